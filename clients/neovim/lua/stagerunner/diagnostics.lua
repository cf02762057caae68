-- validateWorkspace's diagnostics in vim.diagnostic (and the quickfix list), on the files they
-- name. Each validation replaces the previous one of its workspace.
--
-- Protocol positions are 1-based, with 0 meaning "the whole file" (line) or "the whole line"
-- (column); vim.diagnostic's are 0-based, so line 0 and line 1 both land on the first line.

local M = {}

M.namespace = vim.api.nvim_create_namespace('stagerunner')
-- Errors of a render or a run that name a template file and line (-32011).
M.request_namespace = vim.api.nvim_create_namespace('stagerunner.request')

local severities = {
  error = vim.diagnostic.severity.ERROR,
  warning = vim.diagnostic.severity.WARN,
  information = vim.diagnostic.severity.INFO,
}

local published = {} -- namespace -> root -> { bufnr = true }

local function reset(ns, root)
  for buf, _ in pairs((published[ns] or {})[root] or {}) do
    if vim.api.nvim_buf_is_valid(buf) then
      vim.diagnostic.reset(ns, buf)
    end
  end
  published[ns] = published[ns] or {}
  published[ns][root] = {}
end

local function item(d)
  return {
    lnum = math.max((d.line or 0) - 1, 0),
    col = math.max((d.column or 0) - 1, 0),
    severity = severities[d.severity] or vim.diagnostic.severity.ERROR,
    message = d.message,
    source = 'stagerunner',
    code = d.code,
  }
end

-- Publishes a validateWorkspace result of the workspace at root. Returns quickfix items.
function M.publish(root, result)
  reset(M.namespace, root)
  local by_buf, order, qf = {}, {}, {}
  for _, d in ipairs(result.diagnostics or {}) do
    local path = root .. '/' .. d.file
    local buf = vim.fn.bufadd(path)
    if not by_buf[buf] then
      by_buf[buf] = {}
      table.insert(order, buf)
    end
    table.insert(by_buf[buf], item(d))
    table.insert(qf, {
      filename = path,
      lnum = math.max(d.line or 0, 1),
      col = d.column or 0,
      type = (d.severity or 'e'):sub(1, 1):upper(),
      text = string.format('%s [%s]', d.message, d.code),
    })
  end
  for _, buf in ipairs(order) do
    published[M.namespace][root][buf] = true
    vim.diagnostic.set(M.namespace, buf, by_buf[buf])
  end
  return qf
end

-- Removes every diagnostic the plugin set.
function M.clear()
  for ns, roots in pairs(published) do
    for root, _ in pairs(roots) do
      reset(ns, root)
    end
  end
end

-- Marks the template line a render or run error names (-32011 data.file, data.line); clears the
-- marks of the workspace when called without an error.
function M.from_error(root, err)
  reset(M.request_namespace, root)
  local data = err and type(err.data) == 'table' and err.data or nil
  if not data or not data.file then
    return
  end
  local buf = vim.fn.bufadd(root .. '/' .. data.file)
  published[M.request_namespace][root][buf] = true
  vim.diagnostic.set(M.request_namespace, buf, {
    {
      lnum = math.max((data.line or 1) - 1, 0),
      col = 0,
      severity = vim.diagnostic.severity.ERROR,
      message = err.message,
      source = 'stagerunner',
      code = err.code,
    },
  })
end

-- vim.diagnostic.set draws only in loaded buffers, and Neovim 0.7 does not draw the
-- diagnostics of a buffer loaded later; show them when such a buffer enters a window.
-- (0.10 and later do this themselves; showing again is harmless.)
local group = vim.api.nvim_create_augroup('stagerunner.diagnostics', { clear = true })
vim.api.nvim_create_autocmd('BufWinEnter', {
  group = group,
  callback = function(args)
    for _, ns in ipairs({ M.namespace, M.request_namespace }) do
      if #vim.diagnostic.get(args.buf, { namespace = ns }) > 0 then
        vim.diagnostic.show(ns, args.buf)
      end
    end
  end,
})
-- Neovim 0.7 and 0.8 keep the diagnostics of a buffer that was never loaded after it is wiped
-- out, and vim.diagnostic.reset() without a buffer then fails on it (fixed in 0.9: neovim#21454).
-- Drop ours first, and reset only the buffers we set (see reset above).
vim.api.nvim_create_autocmd('BufWipeout', {
  group = group,
  callback = function(args)
    for _, ns in ipairs({ M.namespace, M.request_namespace }) do
      for _, roots in pairs(published[ns] or {}) do
        if roots[args.buf] then
          roots[args.buf] = nil
          pcall(vim.diagnostic.reset, ns, args.buf)
        end
      end
    end
  end,
})

return M
