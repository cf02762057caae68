-- The transport: Neovim's own JSON-RPC client, vim.lsp.rpc, which speaks the LSP base protocol
-- (Content-Length headers). The server detects that framing from the first byte it reads.
--
-- vim.lsp.rpc.start changed between releases, and this module hides the difference:
--   0.7 to 0.9:  start(cmd, cmd_args, dispatchers, extra_spawn_params)
--                0.7 returns { pid, handle, request, notify }; stop it with handle:kill().
--                0.8 and 0.9 return { request, notify, is_closing, terminate }.
--   0.10 and later: start(cmd_list, dispatchers, extra_spawn_params), built on vim.system;
--                returns { request, notify, is_closing, terminate }. A command that cannot be
--                spawned raises an error instead of returning nil (0.7 also vim.notify()s).
-- All versions: request(method, params, callback) returns (true, id); the callback gets
-- (err, result) on the main loop; responses with the code -32800 (RequestCancelled) never reach
-- the callback; on_exit(code, signal) runs in a libuv callback (schedule before touching the
-- editor); the server's stderr goes to the LSP log at level ERROR.

local M = {}

-- vim.lsp.rpc.start takes the command as a list from 0.10 on.
M.cmd_is_list = vim.fn.has('nvim-0.10') == 1

-- Starts argv (a list) with the dispatchers { notification, server_request, on_error, on_exit }
-- and spawn options { cwd, env }. Returns a handle, or nil and a message.
function M.start(argv, dispatchers, spawn)
  local lsp_rpc = require('vim.lsp.rpc')
  local ok, client
  if M.cmd_is_list then
    ok, client = pcall(lsp_rpc.start, argv, dispatchers, spawn)
  else
    ok, client = pcall(lsp_rpc.start, argv[1], vim.list_slice(argv, 2), dispatchers, spawn)
  end
  if not ok then
    return nil, tostring(client)
  end
  if not client then
    return nil, string.format('could not start %s', argv[1])
  end

  local handle = { pid = client.pid }

  function handle.request(method, params, callback)
    return client.request(method, params, callback)
  end

  function handle.notify(method, params)
    return client.notify(method, params)
  end

  function handle.is_closing()
    if client.is_closing then
      return client.is_closing()
    end
    return client.handle == nil or client.handle:is_closing()
  end

  -- SIGTERM: the server answers what it is doing and exits 0.
  function handle.terminate()
    if client.terminate then
      client.terminate()
    elseif client.handle and not client.handle:is_closing() then
      client.handle:kill(15)
    end
  end

  return handle
end

-- An error object for a server-to-client request the plugin does not serve.
function M.method_not_found(method)
  local lsp_rpc = require('vim.lsp.rpc')
  return lsp_rpc.rpc_response_error(-32601, 'Method not found: ' .. tostring(method))
end

return M
