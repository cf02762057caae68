-- The commands plugin/stagerunner.lua defines, their completion, and what they say in a buffer
-- they cannot use.
local h = require('helpers')

return {
  {
    'plugin/stagerunner.lua defines the commands',
    function()
      h.eq(true, vim.g.loaded_stagerunner, 'loaded')
      for _, name in ipairs({ 'Render', 'Run', 'Validate', 'Templates', 'Pipeline', 'Jobs', 'JobStatus', 'Cancel', 'Stop', 'Log' }) do
        h.eq(2, vim.fn.exists(':StageRunner' .. name), ':StageRunner' .. name)
      end
    end,
  },
  {
    'completion: stages for :StageRunnerTemplates, gen_ids for :StageRunnerRun',
    function()
      h.eq({ 'essay', 'evaluation' }, vim.fn.getcompletion('StageRunnerTemplates e', 'cmdline'), 'stages')
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/essay/synthesis-plain.txt')
      h.eq({ 'e-creative-llm', 'e-analytic-llm', 'e-creative-copy' }, vim.fn.getcompletion('StageRunnerRun e-', 'cmdline'), 'gen_ids')
    end,
  },
  {
    'in a buffer that names no generation, :StageRunnerRender says what it needs and starts nothing',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/stagerunner.yaml')
      vim.cmd('StageRunnerRender')
      local warnings = h.notes_at(vim.log.levels.WARN)
      h.eq(1, #warnings, 'one warning')
      h.contains(warnings[1].msg, 'StageRunner: this buffer is not a template')
      h.eq(0, #require('stagerunner.client').all(), 'no server started')
    end,
  },
  {
    'q closes a results window',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/draft/creative-synthesis.txt')
      h.await(require('stagerunner').render)
      local buf = vim.fn.bufnr('stagerunner://render/draft/d-creative')
      local win = vim.fn.bufwinid(buf)
      h.ok(win ~= -1, 'shown')
      vim.api.nvim_set_current_win(win)
      vim.cmd('normal q')
      h.eq(-1, vim.fn.bufwinid(buf), 'closed')
      h.eq(1, #vim.api.nvim_tabpage_list_wins(0), 'one window left')
    end,
  },
  {
    ':checkhealth stagerunner finds the server',
    function()
      vim.cmd('silent checkhealth stagerunner')
      local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
      h.contains(text, 'server: ' .. h.bin() .. ', stagerunner ')
      h.ok(not text:find('ERROR'), 'no errors: ' .. text)
    end,
  },
}
