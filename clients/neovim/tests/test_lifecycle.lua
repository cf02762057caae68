-- The connection: initialize, requests before it answers, cancellation, a server that exits or
-- cannot start, :StageRunnerStop, and shutdown/exit when Neovim quits.
local h = require('helpers')
local client = require('stagerunner.client')
local sr = require('stagerunner')

local function ready(ws)
  local c = client.get(ws)
  h.wait(function()
    return c.state == 'ready' or c.state == 'exited'
  end, 'initialize')
  h.eq('ready', c.state, 'state')
  return c
end

local function log_since(offset)
  local f = assert(io.open(h.log_file, 'rb'))
  f:seek('set', offset)
  local text = f:read('*a')
  f:close()
  return text
end

local function run_nvim(init, cwd, extra)
  local argv = { 'timeout', '60', vim.v.progpath, '--headless', '-i', 'NONE', '-n', '-u', init }
  vim.list_extend(argv, extra or {})
  local output = vim.fn.system('cd ' .. vim.fn.shellescape(cwd) .. ' && ' .. table.concat(vim.tbl_map(vim.fn.shellescape, argv), ' ') .. ' </dev/null 2>&1')
  return vim.v.shell_error, output
end

return {
  {
    'initialize names the workspace; requests made meanwhile wait for it',
    function()
      local ws = h.workspace()
      local c = client.get(ws)
      h.eq('starting', c.state, 'state right after the spawn')
      local pong
      c:request('ping', { echo = 'héllo' }, function(err, result)
        pong = { err = err, result = result }
      end)
      h.wait(function()
        return pong ~= nil
      end, 'ping')
      h.eq({ echo = 'héllo' }, pong.result, 'ping result')
      h.eq('ready', c.state, 'state')
      h.eq((vim.uv or vim.loop).fs_realpath(ws), c.info.workspace.root, 'workspace root')
      h.eq('1.0', c.info.protocolVersion, 'protocol version')
      h.eq('stagerunner', c.info.serverInfo.name, 'server')
      h.eq('lsp', c.capabilities.framing, 'vim.lsp.rpc frames with Content-Length')
      h.ok(c:supports('runStage') and c:supports('validateWorkspace'), 'methods')
      h.ok(c:supports('runPipeline') and c:supports('subscribeStatus'), 'jobs')
      h.eq(c, client.get(ws), 'one server per workspace')
    end,
  },
  {
    'a cancelled request gets -32800 at once and the connection goes on',
    function()
      require('stagerunner').setup(h.options({ args = { '--enable-test-methods' } }))
      local ws = h.workspace()
      local c = ready(ws)
      local got, calls = nil, 0
      local id = c:request('test/sleep', { ms = 20000 }, function(err)
        got, calls = err, calls + 1
      end)
      h.ok(c:cancel(id), 'cancelled')
      h.eq(-32800, got and got.code, 'the callback')
      h.ok(not c:cancel(id), 'only once')
      local pong
      c:request('ping', nil, function(_, result)
        pong = result
      end)
      h.wait(function()
        return pong ~= nil
      end, 'ping after the cancel')
      h.eq(1, calls, 'the callback ran once')
    end,
  },
  {
    'a server that exits is reported, its requests fail, the next command starts a new one',
    function()
      require('stagerunner').setup(h.options({ args = { '--enable-test-methods' } }))
      local ws = h.workspace()
      local c = ready(ws)
      local got
      c:request('test/sleep', { ms = 20000 }, function(err, result)
        got = { err = err, result = result }
      end)
      vim.wait(100)
      c:notify('exit') -- exit without shutdown: the server cancels what runs and exits 1
      h.wait(function()
        return got ~= nil
      end, 'the pending request to fail')
      h.ok(got.err.exited, 'failed as exited')
      h.eq('exited', c.state, 'state')
      h.eq(1, c.exit_code, 'exit code')
      local errors = h.notes_at(vim.log.levels.ERROR)
      h.eq(1, #errors, 'reported once')
      h.eq('StageRunner: the server exited with code 1 (workspace ' .. ws .. ')', vim.split(errors[1].msg, '\n')[1], 'message')
      local called = false
      c:request('ping', nil, function(err)
        called = err and err.exited
      end)
      h.ok(called, 'later requests on it fail at once')

      local result, err = h.await(sr.validate, { root = ws })
      h.eq(nil, err, 'error')
      h.eq(true, result.valid, 'a new server answers')
      h.ok(client.find(ws) ~= c and client.find(ws).state == 'ready', 'a new client')
    end,
  },
  {
    'a server that cannot start is reported with the last lines of its stderr',
    function()
      require('stagerunner').setup(h.options({ args = { '--max-message-size', '10' } }))
      local ws = h.workspace()
      local _, err = h.await(sr.validate, { root = ws })
      h.ok(err and err.exited, 'the request fails')
      local note = h.notes_at(vim.log.levels.ERROR)[1].msg
      h.contains(note, 'StageRunner: the server exited with code 64 (workspace ' .. ws .. ')')
      h.contains(note, '  Error: --max-message-size must be at least 1024 bytes (got 10)')
      h.contains(note, 'log: ' .. h.log_file)
      h.eq(1, #h.notes_at(vim.log.levels.ERROR), 'reported once')
    end,
  },
  {
    'a missing executable is reported with what to set',
    function()
      require('stagerunner').setup(h.options({ cmd = '/nonexistent/stagerunner' }))
      local ws = h.workspace()
      local _, err = h.await(sr.validate, { root = ws })
      h.ok(err and err.exited, 'the request fails')
      local note = h.notes_at(vim.log.levels.ERROR)[1].msg
      h.contains(note, "cannot run '/nonexistent/stagerunner': not found or not executable")
      h.contains(note, 'setup({ cmd =')
    end,
  },
  {
    ':StageRunnerStop sends shutdown and exit; the server exits 0, nothing is reported',
    function()
      require('stagerunner').setup(h.options({ args = { '--log-level', 'info' } }))
      local ws = h.workspace()
      local offset = math.max(vim.fn.getfsize(h.log_file), 0)
      local c = ready(ws)
      vim.cmd('StageRunnerStop')
      h.wait(function()
        return c.state == 'exited'
      end, 'the exit')
      h.eq(0, c.exit_code, 'exit code')
      h.eq(0, #h.notes_at(vim.log.levels.ERROR), 'nothing reported')
      h.contains(log_since(offset), 'reason=exit notification', 'the server log')
      h.eq(nil, client.find(ws), 'gone')
    end,
  },
  {
    'quitting Neovim sends shutdown and exit (VimLeavePre); the server exits 0',
    function()
      local ws = h.workspace()
      local dir = vim.fn.tempname()
      vim.fn.mkdir(dir, 'p')
      local status, log = dir .. '/status', dir .. '/server.log'
      h.write(dir .. '/init.lua', {
        'vim.opt.runtimepath:prepend(' .. vim.inspect(h.plugin) .. ')',
        'require("stagerunner").setup({',
        '  cmd = { "/bin/sh", "-c", [["$0" "$@"; echo "status $?" >> "$SR_STATUS"]], ' .. vim.inspect(h.bin()) .. ' },',
        '  args = { "--log-level", "trace" }, env = { SR_STATUS = ' .. vim.inspect(status) .. ' },',
        '  log_file = ' .. vim.inspect(log) .. ', progress = false,',
        '})',
        'vim.cmd("edit " .. ' .. vim.inspect(ws .. '/stagerunner.yaml') .. ')',
        'local done = false',
        'require("stagerunner").validate({ on_done = function() done = true end })',
        'vim.wait(15000, function() return done end)',
        'vim.cmd("qall!")',
      })
      local code, output = run_nvim(dir .. '/init.lua', dir)
      h.eq(0, code, 'nvim: ' .. output)
      h.wait(function()
        return h.exists(status)
      end, 'the server to exit')
      h.eq('status 0', h.read(status), 'exit status')
      -- What the server read (its trace log); Neovim may be gone before the server handles exit,
      -- which it then logs as the end of its input.
      local received = vim.tbl_filter(function(line)
        return line:find('[JSONRPC] received', 1, true) ~= nil
      end, vim.fn.readfile(log))
      h.contains(received[#received - 1], '"method":"shutdown"', 'shutdown')
      h.contains(received[#received], '"method":"exit"', 'then exit')
    end,
  },
}
