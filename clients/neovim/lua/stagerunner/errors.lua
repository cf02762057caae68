-- Server errors for a person: the message, then what, where and how to fix it, from the error's
-- data (protocol section 7.2), through vim.notify.

local M = {}

-- vim.tbl_islist is deprecated from 0.10 on, in favour of vim.islist.
local islist = vim.islist or vim.tbl_islist

M.names = {
  [-32700] = 'Parse error',
  [-32600] = 'Invalid request',
  [-32601] = 'Method not found',
  [-32602] = 'Invalid params',
  [-32603] = 'Internal error',
  [-32002] = 'Server not initialized',
  [-32800] = 'Request cancelled',
  [-32801] = 'Content modified',
  [-32803] = 'Request failed',
  [-32010] = 'Workspace',
  [-32011] = 'Template',
  [-32012] = 'Model',
  [-32013] = 'Storage',
  [-32014] = 'Truncated',
  [-32015] = 'Task',
  [-32016] = 'Job',
  [-32017] = 'Budget',
}

-- data members shown on their own line, in this order; any other member follows as key: value.
local known = { 'field', 'problem', 'file', 'line', 'hint', 'kind', 'method', 'available', 'limit', 'size', 'offset' }

local function scalar(v)
  if type(v) == 'table' then
    if islist(v) then
      local parts = {}
      for _, x in ipairs(v) do
        table.insert(parts, scalar(x))
      end
      return table.concat(parts, ', ')
    end
    return vim.inspect(v, { newline = ' ', indent = '' })
  end
  return tostring(v)
end

-- The lines of an error: "StageRunner: <method> failed: <message> [<code>]", then
-- what (problem), where (file:line, field), fix (hint), and the rest of data.
function M.lines(method, err)
  local code = err.code
  local head = string.format('StageRunner: %s failed: %s', method, err.message or M.names[code] or 'error')
  if code then
    head = head .. string.format(' [%d %s]', code, M.names[code] or 'error')
  end
  local lines = { head }
  local data = type(err.data) == 'table' and err.data or {}
  if data.problem then
    table.insert(lines, '  what: ' .. data.problem)
  end
  local where = {}
  if data.file then
    table.insert(where, data.line and string.format('%s:%d', data.file, data.line) or data.file)
  end
  if data.field then
    table.insert(where, data.field)
  end
  if #where > 0 then
    table.insert(lines, '  where: ' .. table.concat(where, ', '))
  end
  if data.hint then
    table.insert(lines, '  fix: ' .. data.hint)
  end
  if data.available then
    table.insert(lines, '  available: ' .. scalar(data.available))
  end
  local rest = {}
  for k, v in pairs(data) do
    if not vim.tbl_contains(known, k) and k ~= 'stderr' and k ~= 'root' then
      table.insert(rest, string.format('  %s: %s', k, scalar(v)))
    end
  end
  table.sort(rest)
  vim.list_extend(lines, rest)
  if type(err.data) == 'table' and err.data.stderr then
    for _, l in ipairs(err.data.stderr) do
      table.insert(lines, '  ' .. l)
    end
  end
  if type(err.data) ~= 'table' and err.data ~= nil then
    table.insert(lines, '  data: ' .. scalar(err.data))
  end
  return lines
end

-- Shows the error once: errors already shown (a server exit, say) are skipped.
function M.report(method, err)
  if err.reported then
    return
  end
  err.reported = true
  local level = err.code == -32800 and vim.log.levels.WARN or vim.log.levels.ERROR
  vim.notify(table.concat(M.lines(method, err), '\n'), level)
end

return M
