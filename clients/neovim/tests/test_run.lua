-- :StageRunnerRun against the real server (the embedded provider: no network).
local h = require('helpers')
local sr = require('stagerunner')

local function run_buffer(name)
  h.wait(function()
    return vim.fn.bufnr('stagerunner://run/' .. name) ~= -1
  end, 'the run buffer ' .. name)
  return h.lines('stagerunner://run/' .. name)
end

local function index_of(lines, line)
  for i, l in ipairs(lines) do
    if l == line then
      return i
    end
  end
  return nil
end

return {
  {
    ':StageRunnerRun generates the draft and shows status, files, parsed, raw and metadata',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/draft/creative-synthesis.txt')
      vim.cmd('StageRunnerRun')
      local lines = run_buffer('draft/d-creative')
      h.eq('# runStage draft/d-creative: success', lines[1], 'status line')
      h.eq('# model sonnet-4 via embedded · 232 tokens', lines[2], 'facts')
      local files = index_of(lines, '## files')
      h.eq('data/gens/draft/d-creative/metadata.json', lines[files + 4], 'files')
      local parsed = index_of(lines, '## parsed')
      h.eq('A background "daydreaming loop": a generator samples pairs of concepts from memory and proposes', lines[parsed + 1], 'parsed')
      local raw = index_of(lines, '## raw')
      h.eq('<essay-idea stage="1">', lines[raw + 1], 'raw')
      h.ok(index_of(lines, 'provider: embedded'), 'metadata')
      h.ok(index_of(lines, 'template_id: creative-synthesis'), 'metadata')
      h.ok(index_of(lines, '  total_tokens: 232'), 'usage')
      h.ok(h.exists(ws .. '/data/gens/draft/d-creative/parsed.txt'), 'committed')
      h.eq('markdown', vim.bo[vim.fn.bufnr('stagerunner://run/draft/d-creative')].filetype, 'filetype')
      h.eq(0, #h.notes_at(vim.log.levels.ERROR) + #h.notes_at(vim.log.levels.WARN), 'no complaints')
    end,
  },
  {
    'again it is reused; with ! it is generated again',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/draft/creative-synthesis.txt')
      local first = h.await(sr.run)
      h.eq(false, first.reused, 'first run')
      local again = h.await(sr.run)
      h.eq(true, again.reused, 'second run')
      h.eq(first.metadata.run_id, again.metadata.run_id, 'the same generation')
      h.eq('# runStage draft/d-creative: success (reused)', run_buffer('draft/d-creative')[1], 'shown as reused')
      vim.cmd('StageRunnerRun!')
      h.wait(function()
        return run_buffer('draft/d-creative')[1] == '# runStage draft/d-creative: success'
      end, 'the forced run')
      local forced = require('stagerunner.results').data[vim.fn.bufnr('stagerunner://run/draft/d-creative')]
      h.ok(forced.metadata.run_id ~= first.metadata.run_id, 'a new generation')
    end,
  },
  {
    'an evaluation template runs its row, parents first, and shows the score',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/evaluation/novelty.txt')
      local result, err = h.await(sr.run)
      h.eq(nil, err, 'error')
      h.eq('v-creative-llm-novelty', result.genId, 'the first row of the template')
      h.eq(8.5, result.score, 'score')
      local lines = run_buffer('evaluation/v-creative-llm-novelty')
      h.eq('# model gpt-5-mini via embedded · ' .. result.metadata.usage.total_tokens .. ' tokens · score 8.5', lines[2], 'facts')
      h.ok(h.exists(ws .. '/data/gens/essay/e-creative-llm/metadata.json'), 'the parent essay')
      h.ok(h.exists(ws .. '/data/gens/draft/d-creative/metadata.json'), 'its draft')
    end,
  },
  {
    'the row under the cursor of a membership file runs (a copy essay)',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/cohorts/demo/membership.csv')
      vim.api.nvim_win_set_cursor(0, { 5, 0 })
      vim.cmd('StageRunnerRun')
      local lines = run_buffer('essay/e-creative-copy')
      h.eq('# runStage essay/e-creative-copy: success', lines[1], 'status')
      h.eq('# copy of d-creative', lines[2], 'a copy')
      local raw = index_of(lines, '## raw')
      h.eq('(none: no model call)', lines[raw + 1], 'no raw text')
    end,
  },
  {
    'a parse failure is a result: shown, with a warning and the parser error',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/draft/systematic-analytical.txt')
      local result = h.await(sr.run, { gen_id = 'd-analytic', params = { parserName = 'json' } })
      h.eq('json_parse_error', result.status, 'status')
      local lines = run_buffer('draft/d-analytic')
      h.eq('# runStage draft/d-analytic: json_parse_error', lines[1], 'status line')
      local parsed = index_of(lines, '## parsed')
      h.eq('(none: parsing failed)', lines[parsed + 1], 'no parsed text')
      h.ok(index_of(lines, '## debug'), 'debug section')
      local warnings = h.notes_at(vim.log.levels.WARN)
      h.eq(1, #warnings, 'one warning')
      h.contains(warnings[1].msg, 'StageRunner: draft/d-analytic ended with status json_parse_error: ' .. result.debug.llm_error)
    end,
  },
  {
    'a model error is notified with the field and hint',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/draft/systematic-analytical.txt')
      local _, err = h.await(sr.run, { params = { model = 'acme:gpt-5' } })
      h.eq(-32012, err.code, 'code')
      local note = h.notes_at(vim.log.levels.ERROR)[1].msg
      h.contains(note, "StageRunner: runStage failed: Model: provider 'acme' of model 'acme:gpt-5' is not configured")
      h.contains(note, '  where: params.model')
      h.contains(note, "  fix: check the model id and the provider's configuration")
    end,
  },
}
