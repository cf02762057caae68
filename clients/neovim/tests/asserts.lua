-- Assertions shared by the plugin's tests and the conformance tests of Neovim's JSON-RPC clients
-- (Tests/ClientLibraries/neovim): each raises an error at the caller's line.
local M = {}

function M.eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(string.format('%s: expected %s, got %s', what or 'value', vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function M.ok(cond, what)
  if not cond then
    error(what or 'assertion failed', 2)
  end
end

-- Waits for cond() to hold, up to timeout ms; `level` is the error's level for the caller.
function M.wait(cond, what, timeout, level)
  local ok = vim.wait(timeout, cond, 20)
  if not ok then
    error('timed out waiting for ' .. (what or 'a condition'), level or 2)
  end
end

return M
