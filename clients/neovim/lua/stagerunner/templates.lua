-- :StageRunnerTemplates: the template catalog (listTemplates) as the quickfix list, one entry
-- per template at its file.

local client = require('stagerunner.client')
local workspace = require('stagerunner.workspace')

local M = {}

function M.item(root, t)
  local text = string.format('%s/%s: %s', t.stage, t.id, t.name or t.id)
  if t.description and t.description ~= '' then
    text = text .. ' - ' .. t.description
  end
  local facts = { t.generator }
  if t.parser then
    table.insert(facts, 'parser ' .. t.parser)
  end
  if t.active == false then
    table.insert(facts, 'inactive')
  end
  text = text .. ' (' .. table.concat(facts, ', ') .. ')'
  return { filename = root .. '/' .. t.file, lnum = 1, col = 1, text = text }
end

-- opts: stage (one stage only), include_inactive (default true, as the server), bufnr, open
-- (default true: open the quickfix window), on_done(result|nil, err|nil).
function M.list(opts)
  opts = opts or {}
  local done = opts.on_done or function() end
  local bufnr = (opts.bufnr == nil or opts.bufnr == 0) and vim.api.nvim_get_current_buf() or opts.bufnr
  local path = vim.api.nvim_buf_get_name(bufnr)
  local root = workspace.root_for(path)
  local params = {}
  if opts.stage and opts.stage ~= '' then
    params.stage = opts.stage
  end
  if opts.include_inactive ~= nil then
    params.includeInactive = opts.include_inactive
  end
  client.call(root, 'listTemplates', params, function(result)
    local items = {}
    for _, t in ipairs(result.templates or {}) do
      table.insert(items, M.item(root, t))
    end
    vim.fn.setqflist({}, ' ', { title = 'StageRunner: templates of ' .. root, items = items })
    if opts.open ~= false then
      vim.cmd('botright copen')
    end
    done(result, nil)
  end, function(err)
    done(nil, err)
  end)
end

return M
