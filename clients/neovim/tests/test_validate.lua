-- :StageRunnerValidate: diagnostics on the files the server names.
local h = require('helpers')
local diagnostics = require('stagerunner.diagnostics')

local function validated(ws)
  h.wait(function()
    return vim.fn.getqflist({ title = 1 }).title == 'StageRunner: validateWorkspace ' .. ws
  end, 'the validation')
end

local function get(ws, rel)
  return vim.diagnostic.get(vim.fn.bufadd(ws .. '/' .. rel), { namespace = diagnostics.namespace })
end

-- A catalog row without its file (error), a template file no catalog lists (warning, whole
-- file), a membership row whose parent is nowhere (error).
local function plant(ws)
  h.append(ws .. '/data/1_raw/draft_templates.csv', 'ghost-template,Ghost,No file for this one,,llm,true')
  h.write(ws .. '/data/1_raw/templates/draft/stray.txt', { 'Nobody lists me.' })
  h.append(ws .. '/data/cohorts/demo/membership.csv', 'essay,e-orphan,demo,d-missing,combo-loop,synthesis-plain,sonnet-4')
end

return {
  {
    'a valid workspace: no diagnostics, a summary',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/stagerunner.yaml')
      vim.cmd('StageRunnerValidate')
      validated(ws)
      h.eq(0, #vim.fn.getqflist(), 'quickfix')
      h.eq(0, #vim.diagnostic.get(nil, { namespace = diagnostics.namespace }), 'diagnostics')
      local infos = h.notes_at(vim.log.levels.INFO)
      h.eq('StageRunner: workspace valid: 0 errors, 0 warnings (6 templates, 10 generations)', infos[#infos].msg, 'summary')
    end,
  },
  {
    'planted problems become diagnostics with file, line, column, severity, code and message',
    function()
      local ws = h.workspace()
      plant(ws)
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/draft/creative-synthesis.txt')
      vim.cmd('StageRunnerValidate')
      validated(ws)

      local catalog = get(ws, 'data/1_raw/draft_templates.csv')
      h.eq(1, #catalog, 'catalog diagnostics')
      h.eq(3, catalog[1].lnum, 'line 4')
      h.eq(0, catalog[1].col, 'column 1')
      h.eq(vim.diagnostic.severity.ERROR, catalog[1].severity, 'error')
      h.eq('catalog.missing-template-file', catalog[1].code, 'code')
      h.eq("template 'ghost-template' has no text at data/1_raw/templates/draft/ghost-template.txt", catalog[1].message, 'message')
      h.eq('stagerunner', catalog[1].source, 'source')

      local stray = get(ws, 'data/1_raw/templates/draft/stray.txt')
      h.eq(1, #stray, 'stray diagnostics')
      h.eq(0, stray[1].lnum, 'the whole file: first line')
      h.eq(vim.diagnostic.severity.WARN, stray[1].severity, 'warning')
      h.eq('catalog.unlisted-template', stray[1].code, 'code')
      h.eq('template file is not listed in data/1_raw/draft_templates.csv, so it cannot be used', stray[1].message, 'message')

      local membership = get(ws, 'data/cohorts/demo/membership.csv')
      h.eq(1, #membership, 'membership diagnostics')
      h.eq(11, membership[1].lnum, 'line 12')
      h.eq("parent 'd-missing' of e-orphan is not in the membership", membership[1].message, 'message')
      h.eq('membership.unknown-parent', membership[1].code, 'code')

      local qf = vim.fn.getqflist()
      h.eq(3, #qf, 'quickfix entries')
      h.eq(ws .. '/data/1_raw/draft_templates.csv', vim.api.nvim_buf_get_name(qf[1].bufnr), 'quickfix file')
      h.eq(4, qf[1].lnum, 'quickfix line')
      h.eq('E', qf[1].type, 'quickfix type')
      h.eq('W', qf[2].type, 'quickfix type')
      h.ok(vim.fn.getqflist({ winid = 1 }).winid ~= 0, 'the quickfix window is open')
      h.eq(ws .. '/data/1_raw/templates/draft/creative-synthesis.txt', vim.api.nvim_buf_get_name(0), 'the cursor stays')
      local warns = h.notes_at(vim.log.levels.WARN)
      h.eq('StageRunner: workspace invalid: 2 errors, 1 warning (7 templates, 11 generations)', warns[1].msg, 'summary')

      -- The file opened afterwards has its diagnostics.
      vim.cmd('edit ' .. ws .. '/data/cohorts/demo/membership.csv')
      h.eq(1, #vim.diagnostic.get(0, { namespace = diagnostics.namespace }), 'in the opened buffer')
    end,
  },
  {
    'validating again after a fix clears the diagnostics',
    function()
      local ws = h.workspace()
      plant(ws)
      vim.cmd('edit ' .. ws .. '/stagerunner.yaml')
      h.await(require('stagerunner').validate)
      h.eq(3, #vim.diagnostic.get(nil, { namespace = diagnostics.namespace }), 'before')
      local catalog = ws .. '/data/1_raw/draft_templates.csv'
      local lines = vim.fn.readfile(catalog)
      table.remove(lines)
      vim.fn.writefile(lines, catalog)
      local result = h.await(require('stagerunner').validate)
      h.eq(1, result.errors, 'errors')
      h.eq(2, #vim.diagnostic.get(nil, { namespace = diagnostics.namespace }), 'after')
      h.eq(0, #get(ws, 'data/1_raw/draft_templates.csv'), 'the fixed file has none')
    end,
  },
}
