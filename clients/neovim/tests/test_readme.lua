-- The README's quick start, run as written in a fresh Neovim from a directory laid out like the
-- repository root (clients/neovim and a copy of examples/daydream).
local h = require('helpers')

local function quick_start()
  local text = h.read(h.plugin .. '/README.md')
  local block = text:match('```lua\n(.-)```')
  assert(block, 'no lua block in README.md')
  return block
end

return {
  {
    'the quick start is at most ten lines',
    function()
      local lines = vim.tbl_filter(function(l)
        return l:match('%S') ~= nil
      end, vim.split(quick_start(), '\n'))
      h.ok(#lines <= 10, 'quick start has ' .. #lines .. ' lines')
    end,
  },
  {
    'the quick start renders, runs and validates',
    function()
      local root = vim.fn.tempname()
      vim.fn.mkdir(root .. '/clients', 'p')
      vim.fn.mkdir(root .. '/examples', 'p')
      local uv = vim.uv or vim.loop
      uv.fs_symlink(h.plugin, root .. '/clients/neovim')
      vim.fn.system({ 'cp', '-R', h.example, root .. '/examples/daydream' })
      h.write(root .. '/quickstart.lua', vim.split(quick_start(), '\n'))
      h.write(root .. '/check.lua', {
        'local function has(name) return vim.fn.bufnr(name) ~= -1 end',
        'vim.wait(30000, function()',
        '  return has("stagerunner://render/draft/d-creative") and has("stagerunner://run/draft/d-creative")',
        '    and (vim.fn.getqflist({ title = 1 }).title or ""):find("validateWorkspace") ~= nil',
        'end, 20)',
        'local out = {}',
        'for _, name in ipairs({ "stagerunner://render/draft/d-creative", "stagerunner://run/draft/d-creative" }) do',
        '  local buf = vim.fn.bufnr(name)',
        '  table.insert(out, buf ~= -1 and vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1] or ("missing " .. name))',
        'end',
        'table.insert(out, vim.fn.getqflist({ title = 1 }).title)',
        'table.insert(out, tostring(#vim.fn.getqflist()))',
        'vim.fn.writefile(out, "quickstart.out")',
        'vim.cmd("qall!")',
      })
      local cmd = string.format(
        'cd %s && STAGERUNNER_BIN=%s timeout 60 %s --headless -i NONE -n -u quickstart.lua -c "luafile check.lua" </dev/null 2>&1',
        vim.fn.shellescape(root),
        vim.fn.shellescape(h.bin()),
        vim.fn.shellescape(vim.v.progpath)
      )
      local output = vim.fn.system(cmd)
      h.eq(0, vim.v.shell_error, 'nvim exit status; output: ' .. output)
      local out = vim.fn.readfile(root .. '/quickstart.out')
      h.eq('# draft/d-creative · template creative-synthesis', out[1], 'render')
      h.eq('# runStage draft/d-creative: success', out[2], 'run')
      h.eq('StageRunner: validateWorkspace ' .. root .. '/examples/daydream', out[3], 'validate')
      h.eq('0', out[4], 'no problems')
      h.ok(h.exists(root .. '/examples/daydream/data/gens/draft/d-creative/metadata.json'), 'the generation')
    end,
  },
}
