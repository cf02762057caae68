-- :StageRunnerRun: runs a stage (runStage) and shows the generation in the results window:
-- status, files, parsed and raw text, debug and metadata.

local client = require('stagerunner.client')
local config = require('stagerunner.config')
local diagnostics = require('stagerunner.diagnostics')
local results = require('stagerunner.results')
local workspace = require('stagerunner.workspace')

local M = {}

function M.lines(result)
  local md = type(result.metadata) == 'table' and result.metadata or {}
  local lines = {
    string.format('# runStage %s/%s: %s%s', result.stage, result.genId, result.status, result.reused and ' (reused)' or ''),
  }
  local facts = {}
  if md.mode == 'copy' then
    table.insert(facts, 'copy of ' .. tostring(md.parent_gen_id))
  elseif md.model then
    table.insert(facts, string.format('model %s via %s', md.model, tostring(md.provider)))
  end
  if type(md.usage) == 'table' and md.usage.total_tokens then
    table.insert(facts, string.format('%d tokens', md.usage.total_tokens))
  end
  if result.score then
    table.insert(facts, 'score ' .. tostring(result.score))
  end
  if md.truncated then
    table.insert(facts, 'truncated at the token limit')
  end
  if #facts > 0 then
    table.insert(lines, '# ' .. table.concat(facts, ' · '))
  end
  table.insert(lines, '')
  table.insert(lines, '## files')
  for _, f in ipairs(result.files or {}) do
    table.insert(lines, f)
  end
  table.insert(lines, '')
  table.insert(lines, '## parsed')
  vim.list_extend(lines, results.text_lines(result.parsed, '(none: parsing failed)'))
  table.insert(lines, '')
  table.insert(lines, '## raw')
  vim.list_extend(lines, results.text_lines(result.raw, '(none: no model call)'))
  if result.textTruncated then
    table.insert(lines, '(cut here; the files hold the whole text)')
  end
  if type(result.debug) == 'table' and next(result.debug) ~= nil then
    table.insert(lines, '')
    table.insert(lines, '## debug')
    vim.list_extend(lines, results.value_lines(result.debug))
  end
  table.insert(lines, '')
  table.insert(lines, '## metadata')
  vim.list_extend(lines, results.value_lines(md))
  return lines
end

-- opts: bufnr, gen_id, force (generate again), params (merged over the resolved ones),
-- on_done(result|nil, err|nil).
function M.run(opts)
  opts = opts or {}
  local done = opts.on_done or function() end
  local target, why = workspace.target(opts.bufnr, opts.gen_id)
  if not target then
    vim.notify('StageRunner: ' .. why, vim.log.levels.WARN)
    return done(nil, { message = why, client = true })
  end
  workspace.save(opts.bufnr, target)
  local params = vim.tbl_extend('force', target.params, opts.params or {})
  if opts.force then
    params.force = true
  end
  if config.options.progress then
    vim.notify('StageRunner: running ' .. target.label, vim.log.levels.INFO)
  end
  client.call(target.root, 'runStage', params, function(result)
    diagnostics.from_error(target.root, nil)
    local name = result.stage .. '/' .. result.genId
    local buf = results.show('run', name, M.lines(result), { filetype = 'markdown', data = result })
    if result.status ~= 'success' then
      local why_not = type(result.debug) == 'table' and result.debug.llm_error or nil
      vim.notify(
        string.format('StageRunner: %s ended with status %s%s', name, result.status, why_not and (': ' .. why_not) or ''),
        vim.log.levels.WARN
      )
    end
    done(result, nil, buf)
  end, function(err)
    diagnostics.from_error(target.root, err)
    done(nil, err)
  end)
end

return M
