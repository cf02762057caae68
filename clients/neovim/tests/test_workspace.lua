-- Paths, membership rows and what a command means in a buffer (no server).
local h = require('helpers')
local workspace = require('stagerunner.workspace')

return {
  {
    'a template path gives the root, stage and template id',
    function()
      local t = workspace.template_of('/srv/ws/data/1_raw/templates/essay/synthesis-plain.txt')
      h.eq({
        root = '/srv/ws',
        stage = 'essay',
        template_id = 'synthesis-plain',
        file = 'data/1_raw/templates/essay/synthesis-plain.txt',
      }, t, 'template_of')
      h.eq(nil, workspace.template_of('/srv/ws/data/1_raw/essay_templates.csv'), 'a catalog is no template')
    end,
  },
  {
    'CSV fields: quotes, doubled quotes, empty fields, CR',
    function()
      h.eq({ 'a', 'b, c', 'say "hi"', '', 'z' }, workspace.csv_fields('a,"b, c","say ""hi""",,z\r'), 'fields')
    end,
  },
  {
    'the root is found from a nested directory by its markers',
    function()
      local ws = h.workspace()
      h.eq(ws, workspace.root_for(ws .. '/data/cohorts/demo'), 'from a directory')
      h.eq(ws, workspace.root_for(ws .. '/data/cohorts/demo/membership.csv'), 'from a file')
      h.eq(ws, workspace.root_for(ws .. '/responses/essay.txt'), 'from another file')
    end,
  },
  {
    'a template buffer means its first membership row, preferring one whose parent exists',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/draft/creative-synthesis.txt')
      local t = assert(workspace.target(0))
      h.eq({ stage = 'draft', genId = 'd-creative' }, t.params, 'draft params')
      h.eq(ws, t.root, 'root')

      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/essay/synthesis-plain.txt')
      h.eq('e-creative-llm', assert(workspace.target(0)).params.genId, 'no parent generated: the first row')
      h.write(ws .. '/data/gens/draft/d-analytic/metadata.json', { '{}' })
      h.eq('e-analytic-llm', assert(workspace.target(0)).params.genId, 'the row whose parent exists')

      local named = assert(workspace.target(0, 'v-creative-llm-rigor'))
      h.eq({ stage = 'evaluation', genId = 'v-creative-llm-rigor' }, named.params, 'a gen_id argument')
      local _, why = workspace.target(0, 'nope')
      h.ok(why == nil, 'an unknown gen_id in a template buffer is sent with the template')
      h.eq({ stage = 'essay', templateId = 'synthesis-plain', genId = 'nope' }, workspace.target(0, 'nope').params, 'new gen_id')
    end,
  },
  {
    'a template no row uses is sent with its id and the configured model',
    function()
      local ws = h.workspace()
      h.write(ws .. '/data/1_raw/templates/draft/lonely.txt', { 'Hi' })
      require('stagerunner').setup(h.options({ model = 'sonnet-4' }))
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/draft/lonely.txt')
      h.eq({ stage = 'draft', templateId = 'lonely', model = 'sonnet-4' }, assert(workspace.target(0)).params, 'params')
    end,
  },
  {
    'a membership buffer means the row under the cursor',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/cohorts/demo/membership.csv')
      vim.api.nvim_win_set_cursor(0, { 3, 0 })
      h.eq({ stage = 'draft', genId = 'd-analytic' }, assert(workspace.target(0)).params, 'row 3')
      vim.api.nvim_win_set_cursor(0, { 1, 0 })
      local t, why = workspace.target(0)
      h.eq(nil, t, 'the header is no row')
      h.contains(why, 'not the header')
    end,
  },
  {
    'another buffer needs a gen_id, and says so',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/stagerunner.yaml')
      local t, why = workspace.target(0)
      h.eq(nil, t, 'no target')
      h.contains(why, 'not a template')
      h.eq('essay', assert(workspace.target(0, 'e-creative-copy')).params.stage, 'with a gen_id')
    end,
  },
  {
    'gen_id completion lists the rows of the template first',
    function()
      local ws = h.workspace()
      vim.cmd('edit ' .. ws .. '/data/1_raw/templates/draft/systematic-analytical.txt')
      local ids = workspace.complete_gen_ids('')
      h.eq('d-analytic', ids[1], 'first')
      h.eq(10, #ids, 'all rows')
      h.eq({ 'e-creative-llm', 'e-creative-copy' }, workspace.complete_gen_ids('e-cr'), 'by prefix')
    end,
  },
}
