-- :StageRunnerTemplates: the catalog as the quickfix list.
local h = require('helpers')

local function listed(ws, count)
  h.wait(function()
    return vim.fn.getqflist({ title = 1 }).title == 'StageRunner: templates of ' .. ws
  end, 'the template list')
  local qf = vim.fn.getqflist()
  h.eq(count, #qf, 'templates listed')
  return qf
end

return {
  {
    ':StageRunnerTemplates lists every template at its file',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/stagerunner.yaml')
      vim.cmd('StageRunnerTemplates')
      local qf = listed(ws, 6)
      h.eq(
        'draft/creative-synthesis: Creative Synthesis - Brainstorm connections between the concepts and end with the strongest idea (llm, parser essay_idea_last)',
        qf[1].text,
        'first entry'
      )
      h.eq(ws .. '/data/1_raw/templates/draft/creative-synthesis.txt', vim.api.nvim_buf_get_name(qf[1].bufnr), 'file')
      h.eq('essay/parsed-from-draft: Parsed From Draft - Use the draft\'s parsed idea as the essay; no model call (copy)', qf[3].text, 'a copy template')
      h.ok(vim.fn.getqflist({ winid = 1 }).winid ~= 0, 'quickfix window open')
    end,
  },
  {
    'one stage, and inactive templates marked',
    function()
      local ws = h.workspace()
      local catalog = ws .. '/data/1_raw/evaluation_templates.csv'
      local lines = vim.fn.readfile(catalog)
      lines[3] = lines[3]:gsub('true$', 'false')
      vim.fn.writefile(lines, catalog)
      vim.cmd('edit ' .. catalog)
      vim.cmd('StageRunnerTemplates evaluation')
      local qf = listed(ws, 2)
      h.eq('evaluation/scientific-rigor: Scientific Rigor - Methodological discipline with a Final Score header (llm, parser complex, inactive)', qf[2].text, 'inactive')
      local result = h.await(require('stagerunner').templates, { stage = 'evaluation', include_inactive = false })
      h.eq(1, #result.templates, 'active only')
    end,
  },
  {
    'an unknown stage is the server\'s invalid params error, notified with what and where',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/stagerunner.yaml')
      vim.cmd('StageRunnerTemplates poem')
      h.wait(function()
        return #h.notes_at(vim.log.levels.ERROR) > 0
      end, 'the error')
      local lines = vim.split(h.notes_at(vim.log.levels.ERROR)[1].msg, '\n')
      h.eq("StageRunner: listTemplates failed: Invalid params: params.stage must be one of draft, essay, evaluation, not 'poem' [-32602 Invalid params]", lines[1], 'message')
      h.eq("  what: must be one of draft, essay, evaluation, not 'poem'", lines[2], 'what')
      h.eq('  where: params.stage', lines[3], 'where')
    end,
  },
}
