-- :StageRunnerRender: the prompt the server would send for a template (renderPrompt, a dry run
-- that calls no model and writes nothing), in the results window.

local client = require('stagerunner.client')
local config = require('stagerunner.config')
local diagnostics = require('stagerunner.diagnostics')
local results = require('stagerunner.results')
local workspace = require('stagerunner.workspace')

local M = {}

function M.lines(target, result)
  local names = vim.tbl_keys(result.variables or {})
  table.sort(names)
  local lines = {
    string.format('# %s · template %s', target.label, tostring(result.templateId)),
    string.format('# %s · variables: %s', tostring(result.templateFile), #names > 0 and table.concat(names, ', ') or '(none)'),
    '',
  }
  return vim.list_extend(lines, results.text_lines(result.prompt, ''))
end

-- opts: bufnr (default current), gen_id (default: from the buffer), params (merged over the
-- resolved ones, e.g. { values = { idea_count = 5 } }), on_done(result|nil, err|nil).
function M.render(opts)
  opts = opts or {}
  local done = opts.on_done or function() end
  local target, why = workspace.target(opts.bufnr, opts.gen_id)
  if not target then
    vim.notify('StageRunner: ' .. why, vim.log.levels.WARN)
    return done(nil, { message = why, client = true })
  end
  workspace.save(opts.bufnr, target)
  local params = vim.tbl_extend('force', target.params, opts.params or {})
  if config.options.progress then
    vim.notify('StageRunner: rendering ' .. target.label, vim.log.levels.INFO)
  end
  client.call(target.root, 'renderPrompt', params, function(result)
    diagnostics.from_error(target.root, nil)
    local buf = results.show('render', target.label, M.lines(target, result), { filetype = 'text', data = result })
    done(result, nil, buf)
  end, function(err)
    diagnostics.from_error(target.root, err)
    done(nil, err)
  end)
end

return M
