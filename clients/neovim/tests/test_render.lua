-- :StageRunnerRender against the real server.
local h = require('helpers')

local PROMPT = {
  'You are exploring how ideas combine.',
  '',
  'Concepts:',
  "1. Default mode network: the brain's activity at rest, linked to mind-wandering and idea recombination",
  '2. Generator-verifier gap: checking a solution is easier than producing one',
  '3. Combinatorial search: exploring the space of combinations of existing pieces',
  '',
  'Brainstorm 3 ways these concepts could combine into a mechanism',
  'that generates new insights without supervision. Refine the best one in stages, and wrap each',
  'stage in <essay-idea stage="N"> … </essay-idea>.',
}

local function render_buffer(name)
  h.wait(function()
    return vim.fn.bufnr('stagerunner://render/' .. name) ~= -1
  end, 'the render buffer ' .. name)
  return h.lines('stagerunner://render/' .. name)
end

return {
  {
    ':StageRunnerRender shows the prompt of the template being edited in a split',
    function()
      local ws = h.workspace()
      local template = ws .. '/data/1_raw/templates/draft/creative-synthesis.txt'
      vim.cmd('edit ' .. template)
      local editing = vim.api.nvim_get_current_win()
      vim.cmd('StageRunnerRender')
      local lines = render_buffer('draft/d-creative')
      h.eq('# draft/d-creative · template creative-synthesis', lines[1], 'header')
      h.eq('# data/1_raw/templates/draft/creative-synthesis.txt · variables: concepts, idea_count', lines[2], 'header')
      h.eq(PROMPT, vim.list_slice(lines, 4), 'the prompt')
      local buf = vim.fn.bufnr('stagerunner://render/draft/d-creative')
      h.ok(vim.fn.bufwinid(buf) ~= -1, 'shown in a window')
      h.eq(2, #vim.api.nvim_tabpage_list_wins(0), 'one split')
      h.eq(editing, vim.api.nvim_get_current_win(), 'the cursor stays in the template')
      h.eq('nofile', vim.bo[buf].buftype, 'scratch')
      h.eq(false, vim.bo[buf].modifiable, 'read-only')
      h.eq(PROMPT[1], require('stagerunner.results').data[buf].prompt:match('^[^\n]*'), 'the result is kept')
      h.ok(not h.exists(ws .. '/data/gens/draft/d-creative'), 'a dry run writes no generation')

      -- Again: the same window and buffer.
      vim.cmd('StageRunnerRender')
      vim.wait(300)
      h.eq(2, #vim.api.nvim_tabpage_list_wins(0), 'the split is reused')
    end,
  },
  {
    'a gen_id argument renders that membership row',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/draft/systematic-analytical.txt')
      vim.cmd('StageRunnerRender d-analytic')
      local lines = render_buffer('draft/d-analytic')
      h.eq('Analyse each pair of these 3 concepts systematically:', lines[4], 'first line of the prompt')
      h.eq('- DEFAULT MODE NETWORK;', lines[6], 'a filter applied')
    end,
  },
  {
    'unsaved edits of the template are written before rendering',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/draft/creative-synthesis.txt')
      vim.api.nvim_buf_set_lines(0, 0, 1, false, { 'You are exploring, {{ idea_count }} times over.' })
      local result, err = h.await(require('stagerunner').render)
      h.eq(nil, err, 'error')
      h.eq('You are exploring, 3 times over.', result.prompt:match('^[^\n]*'), 'rendered from the edit')
      h.eq(false, vim.bo[0].modified, 'written')
    end,
  },
  {
    'a template error is notified with the file, line and fix, and marked on its line',
    function()
      local ws = h.workspace()
      local file = 'data/1_raw/templates/draft/creative-synthesis.txt'
      vim.cmd('edit ' .. ws .. '/' .. file)
      vim.api.nvim_buf_set_lines(0, 2, 2, false, { 'Mood: {{ mood }}' })
      vim.cmd('silent write')
      local result, err = h.await(require('stagerunner').render)
      h.eq(nil, result, 'no result')
      h.eq(-32011, err.code, 'code')
      local message = "Template: undefined variable 'mood' in template '" .. file .. "' at line 3"
      h.eq(message, err.message, 'server message')
      local errors = h.notes_at(vim.log.levels.ERROR)
      h.eq(1, #errors, 'one error notified')
      local lines = vim.split(errors[1].msg, '\n')
      h.eq('StageRunner: renderPrompt failed: ' .. message .. ' [-32011 Template]', lines[1], 'what')
      h.eq('  where: ' .. file .. ':3', lines[2], 'where')
      h.eq('  fix: fix the template at data.file, line data.line, or pass the missing values', lines[3], 'fix')
      h.eq(3, #lines, 'nothing more (kind repeats the code)')
      local marks = vim.diagnostic.get(0, { namespace = require('stagerunner.diagnostics').request_namespace })
      h.eq(1, #marks, 'marked in the template')
      h.eq(2, marks[1].lnum, 'on line 3')
      h.eq(message, marks[1].message, 'the message')

      -- Fixed: the mark goes.
      vim.api.nvim_buf_set_lines(0, 2, 3, false, {})
      local fixed = h.await(require('stagerunner').render)
      h.ok(fixed ~= nil, 'renders again')
      h.eq(0, #vim.diagnostic.get(0, { namespace = require('stagerunner.diagnostics').request_namespace }), 'cleared')
    end,
  },
  {
    'a parent that has not been generated is a workspace error with its hint',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/essay/synthesis-plain.txt')
      local _, err = h.await(require('stagerunner').render)
      h.eq(-32010, err.code, 'code')
      local note = h.notes_at(vim.log.levels.ERROR)[1].msg
      h.contains(note, "Workspace: parent draft 'd-creative' has not been generated yet; run it first [-32010 Workspace]")
      h.contains(note, '  where: params.passThroughFrom')
      h.contains(note, '  fix: run the parent stage first, or fix the workspace (validateWorkspace lists its problems)')
    end,
  },
}
