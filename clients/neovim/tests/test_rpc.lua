-- The transport across Neovim versions. Only 0.7 can run here, so the 0.10+ call shape
-- (vim.lsp.rpc.start(cmd_list, dispatchers, extra) returning { request, notify, is_closing,
-- terminate }) is checked by standing in for vim.lsp.rpc.start with an adapter of the same
-- shape over the real one.
local h = require('helpers')
local rpc = require('stagerunner.rpc')
local client = require('stagerunner.client')

local function with_new_shape(fn)
  local lsp_rpc = require('vim.lsp.rpc')
  local original, was_list = lsp_rpc.start, rpc.cmd_is_list
  local calls = {}
  local shaped = function(cmd, dispatchers, extra)
    table.insert(calls, { cmd = cmd, dispatchers = dispatchers, extra = extra })
    assert(type(cmd) == 'table', 'cmd must be a list')
    local old = vim.fn.has('nvim-0.10') == 1 and original(cmd, dispatchers, extra)
      or original(cmd[1], vim.list_slice(cmd, 2), dispatchers, extra)
    local terminated = false
    return {
      request = old.request,
      notify = old.notify,
      is_closing = function()
        return terminated or (old.is_closing and old.is_closing()) or (old.handle and old.handle:is_closing()) or false
      end,
      terminate = function()
        terminated = true
        if old.terminate then
          old.terminate()
        else
          old.handle:kill(15)
        end
      end,
    }
  end
  lsp_rpc.start, rpc.cmd_is_list = shaped, true
  local ok, err = pcall(fn, calls)
  lsp_rpc.start, rpc.cmd_is_list = original, was_list
  if not ok then
    error(err, 0)
  end
end

return {
  {
    'this Neovim is detected by version',
    function()
      h.eq(vim.fn.has('nvim-0.10') == 1, rpc.cmd_is_list, 'cmd_is_list')
    end,
  },
  {
    'the 0.10+ shape: one command list, cwd and env, terminate() to stop',
    function()
      with_new_shape(function(calls)
        require('stagerunner').setup(h.options({ args = { '--log-level', 'info' }, env = { STAGERUNNER_TEST = '1' } }))
        local ws = h.workspace()
        local result = h.await(require('stagerunner').validate, { root = ws })
        h.eq(true, result.valid, 'validate over the new shape')
        h.eq(1, #calls, 'one start')
        local cmd = calls[1].cmd
        h.eq({ h.bin(), 'serve', '--workspace', ws, '--log-level', 'info' }, vim.list_slice(cmd, #cmd - 5), 'the server command')
        h.eq(ws, calls[1].extra.cwd, 'cwd')
        h.eq({ STAGERUNNER_TEST = '1' }, calls[1].extra.env, 'env')
        local c = client.find(ws)
        h.eq(false, c.rpc.is_closing(), 'open')
        c.rpc.terminate() -- SIGTERM: the server answers what runs and exits 0
        h.wait(function()
          return c.state == 'exited'
        end, 'the exit')
        h.eq(0, c.exit_code, 'exit code')
        h.eq(true, c.rpc.is_closing(), 'closing')
      end)
    end,
  },
  {
    'this version\'s shape: terminate() and is_closing() work',
    function()
      local ws = h.workspace()
      h.await(require('stagerunner').validate, { root = ws })
      local c = client.find(ws)
      h.eq(false, c.rpc.is_closing(), 'open')
      if vim.fn.has('nvim-0.8') == 0 then
        h.eq('number', type(c.rpc.pid), '0.7 tells the pid')
      end
      c.rpc.terminate()
      h.wait(function()
        return c.state == 'exited'
      end, 'the exit')
      h.eq(0, c.exit_code, 'SIGTERM: exit 0')
      h.eq(true, c.rpc.is_closing(), 'closing')
      h.contains(h.notes_at(vim.log.levels.ERROR)[1].msg, 'the server exited with code 0', 'an exit nobody asked for is reported')
    end,
  },
}
