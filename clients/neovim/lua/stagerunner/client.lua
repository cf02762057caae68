-- The connection to one server per workspace root: spawn, the initialize handshake, requests
-- with callbacks, notifications, shutdown, and what happens when the process ends.
--
-- Every call is asynchronous: request() returns at once and the callback runs on the main loop
-- with (err, result). err is the server's error object { code, message, data } or, for
-- failures on this side, { message, data, exited = true } (the process ended) or
-- { message, client = true }.
--
-- Later features (runPipeline, subscribeStatus and its statusChanged notifications) plug in
-- through M.on_notification / M.on_request and Client:supports(method); this module knows no
-- method beyond the lifecycle.

local config = require('stagerunner.config')
local rpc = require('stagerunner.rpc')

local M = {}

M.PROTOCOL_VERSION = '1.0'
M.VERSION = '0.1.0'

local clients = {} -- root -> Client
local notification_handlers = {} -- method -> list of function(params, client)
local request_handlers = {} -- method -> function(params, client) -> result, err

local Client = {}
Client.__index = Client

local function tail_of_file(path, offset, max_lines)
  if not path then
    return {}
  end
  local f = io.open(path, 'rb')
  if not f then
    return {}
  end
  f:seek('set', offset or 0)
  local text = f:read('*a') or ''
  f:close()
  local lines = vim.split(text, '\n', { plain = true, trimempty = true })
  return vim.list_slice(lines, math.max(1, #lines - (max_lines or 10) + 1), #lines)
end

function Client.new(root)
  return setmetatable({
    root = root,
    state = 'new', -- new, starting, ready, stopping, exited
    queue = {}, -- requests sent before initialize answered
    pending = {}, -- id -> { method, callback }
    on_ready = {},
  }, Client)
end

-- The argv that runs the server, with stderr appended to config.log_file through /bin/sh.
function Client:_argv()
  local argv = config.command(self.root)
  -- Absolute, because the server starts in the workspace directory.
  argv[1] = vim.fn.exepath(argv[1])
  local log_file = config.options.log_file
  if log_file and vim.fn.has('win32') == 0 and vim.fn.executable('/bin/sh') == 1 then
    vim.fn.mkdir(vim.fn.fnamemodify(log_file, ':h'), 'p')
    self.log_file = log_file
    self.log_offset = math.max(vim.fn.getfsize(log_file), 0)
    local wrapped = { '/bin/sh', '-c', 'log=$1; shift; exec "$@" 2>>"$log"', 'stagerunner', log_file }
    return vim.list_extend(wrapped, argv)
  end
  return argv
end

function Client:start()
  self.state = 'starting'
  local exe = config.command(self.root)[1]
  if vim.fn.executable(exe) ~= 1 then
    return self:_exited(nil, nil, string.format(
      "cannot run '%s': not found or not executable; put stagerunner on PATH or set require('stagerunner').setup({ cmd = '/path/to/stagerunner' })",
      exe
    ))
  end

  local dispatchers = {
    notification = function(method, params)
      for _, handler in ipairs(notification_handlers[method] or {}) do
        local ok, err = pcall(handler, params, self)
        if not ok then
          vim.notify('StageRunner: ' .. method .. ' handler failed: ' .. tostring(err), vim.log.levels.ERROR)
        end
      end
      -- Unknown notifications are ignored (protocol section 9).
    end,
    server_request = function(method, params)
      local handler = request_handlers[method]
      if not handler then
        return nil, rpc.method_not_found(method)
      end
      return handler(params, self)
    end,
    -- Messages the RPC client could not handle (an answer with id null, a broken frame).
    on_error = function(kind, detail)
      local names = require('vim.lsp.rpc').client_errors or {}
      vim.schedule(function()
        vim.notify(
          string.format('StageRunner: protocol trouble (%s): %s', tostring(names[kind] or kind), vim.inspect(detail)),
          vim.log.levels.WARN
        )
      end)
    end,
    on_exit = function(code, signal)
      vim.schedule(function()
        self:_exited(code, signal)
      end)
    end,
  }

  local argv = self:_argv()
  local handle, err = rpc.start(argv, dispatchers, { cwd = self.root, env = config.options.env })
  if not handle then
    return self:_exited(nil, nil, err)
  end
  self.rpc = handle

  local params = {
    processId = vim.fn.getpid(),
    clientInfo = { name = 'stagerunner.nvim', version = M.VERSION },
    protocolVersion = M.PROTOCOL_VERSION,
    capabilities = vim.empty_dict(),
    workspaceRoot = self.root,
  }
  self:_send('initialize', params, function(ierr, result)
    if ierr or self.state ~= 'starting' then
      -- The server stays uninitialized (or is being stopped); nothing queued can run.
      if ierr and not ierr.exited then
        require('stagerunner.errors').report('initialize', ierr)
      end
      local failure = ierr or { message = 'the server is stopping', client = true, reported = true }
      local queued = self.queue
      self.queue = {}
      for _, q in ipairs(queued) do
        q.callback(failure, nil)
      end
      self:stop()
      return
    end
    self.info = result
    self.capabilities = result and result.capabilities or {}
    self.state = 'ready'
    self.rpc.notify('initialized', {})
    local queued = self.queue
    self.queue = {}
    for _, q in ipairs(queued) do
      self:_send(q.method, q.params, q.callback)
    end
  end)
end

function Client:_send(method, params, callback)
  local id
  local ok, sent_id = self.rpc.request(method, params, function(err, result)
    -- Answered once: a request cancelled here (or failed by an exit) ignores a late answer.
    if not self.pending[id] then
      return
    end
    self.pending[id] = nil
    callback(err, result)
  end)
  if not ok then
    callback({ message = 'the server is not running', client = true }, nil)
    return nil
  end
  id = sent_id
  self.pending[id] = { method = method, callback = callback }
  return id
end

-- Sends a request; callback(err, result) runs on the main loop. Returns the request id once it
-- is on the wire (nil while queued behind initialize).
function Client:request(method, params, callback)
  callback = callback or function() end
  if self.state == 'starting' then
    table.insert(self.queue, { method = method, params = params, callback = callback })
    return nil
  end
  if self.state ~= 'ready' then
    callback(self.exit_error or { message = 'the server is not running', client = true }, nil)
    return nil
  end
  return self:_send(method, params, callback)
end

function Client:notify(method, params)
  if self.rpc and (self.state == 'ready' or self.state == 'stopping') then
    return self.rpc.notify(method, params)
  end
  return false
end

-- Cancels a request sent with request(): its callback gets a -32800 error at once (Neovim's
-- RPC client drops the server's own -32800 answer).
function Client:cancel(id)
  local p = id and self.pending[id]
  if not p then
    return false
  end
  self.pending[id] = nil
  self:notify('$/cancelRequest', { id = id })
  p.callback({ code = -32800, message = 'Request cancelled' }, nil)
  return true
end

-- Whether the server serves a request method (initialize's capabilities.methods).
function Client:supports(method)
  return vim.tbl_contains((self.capabilities or {}).methods or {}, method)
end

-- shutdown, then exit; SIGTERM if the process is still there after timeout_ms.
function Client:stop(timeout_ms)
  if self.state == 'exited' or self.state == 'stopping' then
    return
  end
  local was = self.state
  self.state = 'stopping'
  if not self.rpc or was == 'new' then
    return
  end
  local function exit()
    if self.state ~= 'exited' then
      self.rpc.notify('exit')
    end
  end
  local ok = self.rpc.request('shutdown', nil, function()
    exit()
  end)
  self.shutdown_sent = ok
  if not ok then
    return self.rpc.terminate()
  end
  vim.defer_fn(function()
    if self.state ~= 'exited' then
      self.rpc.terminate()
    end
  end, timeout_ms or 3000)
end

-- On VimLeavePre: shutdown (unless stop() sent it) and exit written together, nothing waited
-- for. The server reads both, finishes what it is doing and exits 0 (protocol section 4.2); when
-- Neovim is gone first, the end of its input ends it the same way.
function Client:leave()
  if self.rpc and (self.state == 'ready' or self.state == 'starting' or self.state == 'stopping') then
    self.state = 'stopping'
    if not self.shutdown_sent then
      self.shutdown_sent = pcall(self.rpc.request, 'shutdown', nil, function() end)
    end
    pcall(self.rpc.notify, 'exit')
  end
end

function Client:_exited(code, signal, reason)
  local expected = self.state == 'stopping'
  self.state = 'exited'
  self.exit_code = code
  self.exit_signal = signal
  if clients[self.root] == self then
    clients[self.root] = nil
  end
  local stderr = tail_of_file(self.log_file, self.log_offset, 10)
  local message
  if reason then
    message = reason
  elseif signal and signal ~= 0 then
    message = string.format('the server exited on signal %d', signal)
  else
    message = string.format('the server exited with code %s', tostring(code))
  end
  local err = {
    message = message,
    exited = true,
    data = { exit_code = code, signal = signal, stderr = stderr, root = self.root },
  }
  self.exit_error = err

  local clean = expected and (code == 0 or code == nil or signal == 15)
  if not clean then
    local lines = { 'StageRunner: ' .. message .. ' (workspace ' .. self.root .. ')' }
    for _, l in ipairs(stderr) do
      table.insert(lines, '  ' .. l)
    end
    if #stderr > 0 and self.log_file then
      table.insert(lines, 'log: ' .. self.log_file)
    end
    vim.notify(table.concat(lines, '\n'), vim.log.levels.ERROR)
    err.reported = true
  end

  local waiting = {}
  for _, q in ipairs(self.queue) do
    table.insert(waiting, q.callback)
  end
  for _, p in pairs(self.pending) do
    table.insert(waiting, p.callback)
  end
  self.queue, self.pending = {}, {}
  for _, cb in ipairs(waiting) do
    pcall(cb, err, nil)
  end
  for _, cb in ipairs(self.on_exit or {}) do
    pcall(cb, self)
  end
end

-- The running client of a root, started when there is none.
function M.get(root)
  local c = clients[root]
  if c and c.state ~= 'exited' and c.state ~= 'stopping' then
    return c
  end
  c = Client.new(root)
  clients[root] = c
  c:start()
  return c
end

-- The client of a root if one runs, without starting one.
function M.find(root)
  return clients[root]
end

function M.all()
  local list = {}
  for _, c in pairs(clients) do
    table.insert(list, c)
  end
  return list
end

function M.stop_all(timeout_ms)
  for _, c in pairs(clients) do
    c:stop(timeout_ms)
  end
end

function M.leave_all()
  for _, c in pairs(clients) do
    c:leave()
  end
end

-- Register a handler for a server notification, such as statusChanged (not in protocol 1.0).
function M.on_notification(method, handler)
  notification_handlers[method] = notification_handlers[method] or {}
  table.insert(notification_handlers[method], handler)
end

-- Serve a server-to-client request, such as executeStage (not in protocol 1.0). The handler
-- returns result, err; unknown methods are answered -32601.
function M.on_request(method, handler)
  request_handlers[method] = handler
end

-- A request to the server of root, for commands: on_result(result) on success; an error is
-- shown with vim.notify (errors.report) and passed to on_error(err) when given.
function M.call(root, method, params, on_result, on_error)
  local c = M.get(root)
  return c:request(method, params, function(err, result)
    if err then
      require('stagerunner.errors').report(method, err)
      if on_error then
        on_error(err)
      end
      return
    end
    if on_result then
      on_result(result)
    end
  end)
end

M.Client = Client

return M
