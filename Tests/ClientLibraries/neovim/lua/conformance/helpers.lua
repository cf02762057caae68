-- What the conformance tests share: the server binary, temporary copies of the examples,
-- waiting and assertions, and two ways of starting the server, each as a Neovim user writes it:
--   M.rpc_session(opts)   vim.lsp.rpc.start with dispatchers (notification, server_request,
--                         on_error, on_exit); s.rpc is the object Neovim returns.
--   M.lsp_session(config) vim.lsp.start_client(config); s.client is Neovim's client object.
-- Both record what the server sends (notifications, server requests, client errors, the exit) in
-- the session table, and both are stopped by M.cleanup() after every test.

local asserts = require('asserts')

local M = {}

local uv = vim.uv or vim.loop

M.dir = vim.g.conformance_dir
M.repo = vim.env.STAGERUNNER_REPO or vim.fn.fnamemodify(M.dir, ':h:h:h')

-- Upper bounds only, generous: the machine may be loaded.
M.TIMEOUT = 60000
M.JOB_TIMEOUT = 180000

-- Servers started by the current test: { exited = fn, interrupt = fn }.
M.started = {}

function M.bin()
  local bin = vim.env.STAGERUNNER_BIN
  if not bin or bin == '' then
    bin = M.repo .. '/.build/debug/stagerunner'
  end
  return vim.fn.fnamemodify(bin, ':p')
end

function M.realpath(path)
  return uv.fs_realpath(path)
end

-- A fresh copy of examples/<name>, under `parent` (a folder name, spaces and all) when given.
-- Returns its absolute path.
function M.workspace(name, parent)
  local example = M.repo .. '/examples/' .. name
  local dir = vim.fn.tempname()
  if parent then
    dir = dir .. '/' .. parent
  end
  vim.fn.mkdir(dir, 'p')
  local target = dir .. '/' .. name
  vim.fn.system({ 'cp', '-R', example, target })
  assert(vim.v.shell_error == 0, 'cannot copy ' .. example)
  return target
end

-- An empty directory: the server's working directory when the workspace must come from
-- initialize and nowhere else (the server falls back to its working directory).
function M.empty_dir()
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, 'p')
  return dir
end

function M.write(path, lines)
  vim.fn.mkdir(vim.fn.fnamemodify(path, ':h'), 'p')
  vim.fn.writefile(lines, path)
end

function M.read(path)
  return table.concat(vim.fn.readfile(path), '\n')
end

-- A copy of examples/research-task with two more tasks:
--   tasks/nap.task.yaml    its ingestion command sleeps 1 s, then answers {"output": "slept 1"}
--   tasks/slow.task.yaml   its ingestion command sleeps 60 s (only cancelling ends it sooner)
function M.research_workspace()
  local ws = M.workspace('research-task')
  M.write(ws .. '/tasks/stages/nap.sh', {
    '#!/bin/sh',
    '# Sleeps $1 seconds, then answers as a command stage does.',
    'sleep "$1"',
    'printf \'{"output": "slept %s", "flags": {}}\\n\' "$1"',
  })
  M.write(ws .. '/tasks/nap.task.yaml', {
    'name: nap',
    'stages:',
    '  ingestion: { command: [sh, stages/nap.sh, "1"] }',
  })
  M.write(ws .. '/tasks/slow.task.yaml', {
    'name: slow',
    'stages:',
    '  ingestion: { command: [sleep, "60"], timeout: 120 }',
  })
  return ws
end

function M.wait(cond, what, timeout)
  asserts.wait(cond, what, timeout or M.TIMEOUT, 3)
end

-- Lets the event loop run for ms (to see that something does not happen).
function M.settle(ms)
  vim.wait(ms, function()
    return false
  end, 20)
end

function M.now_ms()
  return uv.hrtime() / 1e6
end

M.eq = asserts.eq
M.ok = asserts.ok

function M.has(list, value, what)
  if type(list) ~= 'table' or not vim.tbl_contains(list, value) then
    error(string.format('%s: %s is not in %s', what or 'list', vim.inspect(value), vim.inspect(list)), 2)
  end
end

-- The JSON object {} as vim.json.decode returns it (it marks empty objects like vim.empty_dict()),
-- as opposed to the empty array [].
local dict_mt = getmetatable(vim.empty_dict())
function M.is_empty_object(v)
  return type(v) == 'table' and next(v) == nil and getmetatable(v) == dict_mt
end

function M.empty_object(v, what)
  if not M.is_empty_object(v) then
    error(string.format('%s: expected the JSON object {}, got %s (metatable %s)', what or 'value', vim.inspect(v), tostring(getmetatable(v))), 2)
  end
end

-- An error answer: err.code is `code`.
function M.error_code(code, err, what)
  if type(err) ~= 'table' or err.code ~= code then
    error(string.format('%s: expected an error %d, got %s', what or 'answer', code, vim.inspect(err)), 2)
  end
end

-- The answer of a request, waited for: send(method, params, callback) is rpc.request or a
-- wrapper of client.request, s the session. Returns result, err. Fails the test on a timeout,
-- when the server exits first, or when the request could not be sent.
local function await(s, send, method, params, timeout)
  local done, res, err = false, nil, nil
  local sent, id = send(method, params, function(e, r)
    done, err, res = true, e, r
  end)
  if not sent then
    error('could not send ' .. method, 3)
  end
  local ok = vim.wait(timeout or M.TIMEOUT, function()
    return done or s.exit ~= nil
  end, 20)
  if not done and s.exit then
    -- An answer read just before the exit is still on its way to the callback.
    vim.wait(200, function()
      return done
    end, 10)
  end
  if not done then
    if s.exit then
      error(string.format('the server exited (code %s, signal %s) before answering %s', tostring(s.exit.code), tostring(s.exit.signal), method), 3)
    end
    error(string.format('timed out waiting for the answer to %s (id %s)', method, tostring(id)), 3)
  end
  return res, err
end

-- A result that must not be an error.
local function result_of(s, send, method, params, timeout)
  local res, err = await(s, send, method, params, timeout)
  if err then
    error(string.format('%s answered an error: %s', method, vim.inspect(err)), 3)
  end
  return res
end

-- vim.lsp.rpc.start: (cmd, args, dispatchers, extra) up to 0.9, (cmd_list, dispatchers, extra)
-- from 0.10 on.
function M.rpc_start(cmd, args, dispatchers, extra)
  if vim.fn.has('nvim-0.10') == 1 then
    return vim.lsp.rpc.start(vim.list_extend({ cmd }, args), dispatchers, extra)
  end
  return vim.lsp.rpc.start(cmd, args, dispatchers, extra)
end

-- Sends a signal to the process of an RPC object of vim.lsp.rpc.start (0.7 has .handle; later
-- versions only terminate(), which is SIGTERM).
local function signal_rpc(rpc, sig)
  if rpc.handle then
    if not rpc.handle:is_closing() then
      rpc.handle:kill(sig)
    end
  elseif rpc.terminate then
    rpc.terminate()
  end
end

-- The server through vim.lsp.rpc.start. opts: args (after `serve`), cwd (default an empty
-- directory), server_request(method, params) -> result, err. Returns the session:
--   s.rpc                  what vim.lsp.rpc.start returned (request, notify, ...)
--   s.notifications        { method, params } in arrival order
--   s.server_requests      { method, params }
--   s.errors               { code, name, err } from on_error (e.g. a response with no request)
--   s.exit                 { code, signal } once the process has ended
--   s.call(method, params, timeout) -> result (fails the test on an error answer)
--   s.try(method, params, timeout) -> result, err
function M.rpc_session(opts)
  opts = opts or {}
  local s = { notifications = {}, server_requests = {}, errors = {} }
  local dispatchers = {
    notification = function(method, params)
      table.insert(s.notifications, { method = method, params = params })
    end,
    server_request = function(method, params)
      table.insert(s.server_requests, { method = method, params = params })
      if opts.server_request then
        return opts.server_request(method, params)
      end
      return nil, vim.lsp.rpc.rpc_response_error(-32601)
    end,
    on_error = function(code, err)
      table.insert(s.errors, { code = code, name = vim.lsp.rpc.client_errors[code], err = err })
    end,
    on_exit = function(code, signal)
      s.exit = { code = code, signal = signal }
    end,
  }
  local args = vim.list_extend({ 'serve' }, opts.args or {})
  s.rpc = M.rpc_start(M.bin(), args, dispatchers, { cwd = opts.cwd or M.empty_dir() })
  assert(s.rpc, 'vim.lsp.rpc.start could not start ' .. M.bin())
  table.insert(M.started, {
    exited = function()
      return s.exit ~= nil
    end,
    interrupt = function()
      signal_rpc(s.rpc, 'sigint')
    end,
  })
  s.call = function(method, params, timeout)
    return result_of(s, s.rpc.request, method, params, timeout)
  end
  s.try = function(method, params, timeout)
    return await(s, s.rpc.request, method, params, timeout)
  end
  s.wait_exit = function(what)
    M.wait(function()
      return s.exit ~= nil
    end, what or 'the server to exit')
    return s.exit
  end
  return s
end

-- The server through vim.lsp.start_client. config is start_client's (root_dir, handlers,
-- init_options, before_init, ...); cmd defaults to { <bin>, 'serve' } and cmd_cwd to an empty
-- directory, so the workspace can only come from initialize. Waits for initialize. Returns:
--   s.client        Neovim's client object
--   s.init_result   the initialize result (on_init's second argument)
--   s.errors        { code, name, err } from on_error
--   s.exit          { code, signal } from on_exit
--   s.call / s.try  as in rpc_session, over client.request
function M.lsp_session(config)
  local s = { errors = {} }
  config = vim.tbl_extend('force', {
    name = 'stagerunner',
    cmd = { M.bin(), 'serve' },
    cmd_cwd = M.empty_dir(),
  }, config or {})
  config.on_init = function(_, result)
    s.init_result = result
  end
  config.on_exit = function(code, signal)
    s.exit = { code = code, signal = signal }
  end
  config.on_error = function(code, err)
    table.insert(s.errors, { code = code, name = vim.lsp.client_errors[code], err = err })
  end
  local id = vim.lsp.start_client(config)
  assert(id, 'vim.lsp.start_client could not start ' .. M.bin())
  s.id = id
  s.client = vim.lsp.get_client_by_id(id)
  table.insert(M.started, {
    exited = function()
      return s.exit ~= nil
    end,
    interrupt = function()
      signal_rpc(s.client.rpc, 'sigint')
    end,
  })
  local function send(method, params, callback)
    return s.client.request(method, params, function(err, result)
      callback(err, result)
    end)
  end
  s.call = function(method, params, timeout)
    return result_of(s, send, method, params, timeout)
  end
  s.try = function(method, params, timeout)
    return await(s, send, method, params, timeout)
  end
  s.wait_exit = function(what)
    M.wait(function()
      return s.exit ~= nil
    end, what or 'the server to exit')
    return s.exit
  end
  M.wait(function()
    return s.init_result ~= nil or s.exit ~= nil or #s.errors > 0
  end, 'initialize')
  if not s.init_result then
    error(string.format('initialize failed: errors %s, exit %s', vim.inspect(s.errors), vim.inspect(s.exit)), 2)
  end
  return s
end

-- After every test: servers still running get SIGINT (work in progress is cancelled, exit 0);
-- the LSP log level goes back to the default.
function M.cleanup()
  local started = M.started
  M.started = {}
  for _, p in ipairs(started) do
    if not p.exited() then
      p.interrupt()
    end
  end
  vim.lsp.set_log_level('warn')
  local ok = vim.wait(20000, function()
    for _, p in ipairs(started) do
      if not p.exited() then
        return false
      end
    end
    return true
  end, 20)
  if not ok then
    error('a server did not exit within 20 s of SIGINT')
  end
end

-- RFC 6902 as statusChanged uses it (add, replace, remove), applied to doc in place.
local function unescape(token)
  return (token:gsub('~1', '/'):gsub('~0', '~'))
end

function M.apply_patch(doc, ops)
  for i, op in ipairs(ops) do
    M.ok(type(op.path) == 'string' and op.path:sub(1, 1) == '/', 'patch op ' .. i .. ': bad path ' .. vim.inspect(op.path))
    local tokens = vim.split(op.path:sub(2), '/', { plain = true })
    local parent = doc
    for j = 1, #tokens - 1 do
      local key = unescape(tokens[j])
      local index = tonumber(key)
      local child = parent[key]
      if child == nil and index and vim.tbl_islist(parent) then
        child = parent[index + 1]
      end
      M.ok(type(child) == 'table', string.format('patch op %d: %s does not lead to an object', i, op.path))
      parent = child
    end
    local key = unescape(tokens[#tokens])
    local index = tonumber(key)
    local is_array = index ~= nil and getmetatable(parent) ~= dict_mt and vim.tbl_islist(parent) and next(parent) ~= nil
    if op.op == 'add' or op.op == 'replace' then
      local value = vim.deepcopy(op.value)
      if is_array and op.op == 'add' then
        table.insert(parent, index + 1, value)
      elseif is_array then
        parent[index + 1] = value
      else
        parent[key] = value
      end
    elseif op.op == 'remove' then
      if is_array then
        table.remove(parent, index + 1)
      else
        parent[key] = nil
      end
    else
      error(string.format('patch op %d: unexpected op %s', i, vim.inspect(op.op)))
    end
  end
end

-- The events a statusChanged notification stands for: params.events when it merges several,
-- else { params.event }.
function M.events_of(params)
  if type(params.events) == 'table' and #params.events > 0 then
    return params.events
  end
  return { params.event }
end

-- Where the LSP log ends now (its size in bytes), for logged_request_ids.
function M.log_mark()
  return math.max(vim.fn.getfsize(vim.lsp.get_log_path()), 0)
end

-- The lines the LSP log got after `mark`. With vim.lsp.set_log_level('debug'), vim.lsp.rpc logs
-- every message it receives ("rpc.receive" and the decoded message, written by vim.inspect on
-- one line), and every -32800 answer it drops ("Received cancellation ack").
function M.log_lines(mark)
  local f = io.open(vim.lsp.get_log_path(), 'rb')
  if not f then
    return {}
  end
  f:seek('set', mark or 0)
  local text = f:read('*a') or ''
  f:close()
  return vim.split(text, '\n', { plain = true, trimempty = true })
end

-- The ids of the server-to-client requests `method` received after `mark`, as vim.inspect wrote
-- them: `7` for an integer, `"s7"` for a string.
function M.logged_request_ids(method, mark)
  local ids = {}
  local pattern = 'id = ([^,]+),%s*jsonrpc = "2%.0",%s*method = "' .. vim.pesc(method) .. '"'
  for _, line in ipairs(M.log_lines(mark)) do
    if line:find('"rpc.receive"', 1, true) then
      local id = line:match(pattern)
      if id then
        table.insert(ids, id)
      end
    end
  end
  return ids
end

-- The answers with error code -32800 that vim.lsp.rpc received (and kept from the callbacks)
-- after `mark`: { [request id] = true }.
function M.logged_cancellation_acks(mark)
  local acks = {}
  for _, line in ipairs(M.log_lines(mark)) do
    if line:find('Received cancellation ack', 1, true) and line:find('code = -32800,', 1, true) then
      local id = line:match('}%s*,%s*id = (%d+),')
      if id then
        acks[tonumber(id)] = true
      end
    end
  end
  return acks
end

-- The daydream templates, as listTemplates lists them (stage order, then id).
M.DAYDREAM_TEMPLATES = {
  'draft/creative-synthesis',
  'draft/systematic-analytical',
  'essay/parsed-from-draft',
  'essay/synthesis-plain',
  'evaluation/novelty',
  'evaluation/scientific-rigor',
}

-- The parsed text of d-creative: the last <essay-idea> of responses/draft-creative.txt.
M.D_CREATIVE_PARSED = 'A background "daydreaming loop": a generator samples pairs of concepts from memory and proposes\n'
  .. 'links between them, while a critic model scores each link and writes the best ones back, so the\n'
  .. 'system keeps producing and filtering candidate insights without being asked.'

M.D_CREATIVE_FILES = {
  'data/gens/draft/d-creative/prompt.txt',
  'data/gens/draft/d-creative/raw.txt',
  'data/gens/draft/d-creative/parsed.txt',
  'data/gens/draft/d-creative/metadata.json',
}

-- The request methods every 1.0 server serves (capabilities.methods lists at least these).
M.METHODS = {
  'cancelJob', 'getArtifact', 'getStatus', 'initialize', 'listJobs', 'listTemplates', 'ping',
  'renderPrompt', 'resumeJob', 'retryTask', 'runPipeline', 'runStage', 'runTask', 'shutdown',
  'subscribeStatus', 'unsubscribeStatus', 'validateWorkspace',
}

-- Checks an initialize result's capabilities, and their copy under experimental.stagerunner.
function M.check_capabilities(caps)
  M.ok(type(caps) == 'table', 'capabilities: ' .. vim.inspect(caps))
  M.eq('lsp', caps.framing, 'capabilities.framing (vim.lsp.rpc frames with Content-Length)')
  M.eq(true, caps.batches, 'capabilities.batches')
  M.eq(true, caps.cancellation, 'capabilities.cancellation')
  M.eq(67108864, caps.maxMessageSize, 'capabilities.maxMessageSize (the 64 MiB default)')
  M.ok(type(caps.methods) == 'table', 'capabilities.methods')
  for _, m in ipairs(M.METHODS) do
    M.has(caps.methods, m, 'capabilities.methods')
  end
  local sorted = vim.deepcopy(caps.methods)
  table.sort(sorted)
  M.eq(sorted, caps.methods, 'capabilities.methods is sorted')
  for _, m in ipairs(caps.methods) do
    M.ok(not m:find('^test/'), 'test methods are listed without --enable-test-methods: ' .. m)
  end
  for _, n in ipairs({ 'initialized', 'exit', '$/cancelRequest' }) do
    M.has(caps.notifications, n, 'capabilities.notifications')
  end
  local exp = caps.experimental and caps.experimental.stagerunner
  M.ok(type(exp) == 'table', 'capabilities.experimental.stagerunner: ' .. vim.inspect(caps.experimental))
  M.eq(caps.methods, exp.methods, 'capabilities.experimental.stagerunner.methods')
  for k, v in pairs(exp) do
    if caps[k] ~= nil then
      M.eq(caps[k], v, 'capabilities.experimental.stagerunner.' .. k)
    end
  end
end

return M
