-- :StageRunnerValidate: validateWorkspace's problems as diagnostics on the files they name, and
-- as the quickfix list.

local client = require('stagerunner.client')
local config = require('stagerunner.config')
local diagnostics = require('stagerunner.diagnostics')
local workspace = require('stagerunner.workspace')

local M = {}

local function plural(n, word)
  return string.format('%d %s%s', n, word, n == 1 and '' or 's')
end

-- opts: bufnr (its workspace; default current), root, on_done(result|nil, err|nil).
function M.validate(opts)
  opts = opts or {}
  local done = opts.on_done or function() end
  local bufnr = (opts.bufnr == nil or opts.bufnr == 0) and vim.api.nvim_get_current_buf() or opts.bufnr
  local path = vim.api.nvim_buf_get_name(bufnr)
  local root = opts.root or workspace.root_for(path)
  client.call(root, 'validateWorkspace', nil, function(result)
    local qf = diagnostics.publish(root, result)
    vim.fn.setqflist({}, ' ', { title = 'StageRunner: validateWorkspace ' .. root, items = qf })
    local summary = string.format(
      'StageRunner: %s: %s, %s (%s, %s)',
      result.valid and 'workspace valid' or 'workspace invalid',
      plural(result.errors or 0, 'error'),
      plural(result.warnings or 0, 'warning'),
      plural(result.templates or 0, 'template'),
      plural(result.generations or 0, 'generation')
    )
    vim.notify(summary, result.valid and vim.log.levels.INFO or vim.log.levels.WARN)
    if #qf > 0 and config.options.open_quickfix then
      local win = vim.api.nvim_get_current_win()
      vim.cmd('botright copen')
      if vim.api.nvim_win_is_valid(win) then
        vim.api.nvim_set_current_win(win)
      end
    end
    done(result, nil)
  end, function(err)
    done(nil, err)
  end)
end

return M
