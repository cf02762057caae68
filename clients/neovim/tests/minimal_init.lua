-- Neovim for the tests: nothing of the user's, this plugin on the runtimepath (and its
-- plugin/ file sourced), the tests directory on package.path.
--   nvim --headless --noplugin -u clients/neovim/tests/minimal_init.lua \
--     -c "lua require('runner').run()"
local tests = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h')
local plugin = vim.fn.fnamemodify(tests, ':h')

vim.opt.runtimepath = { plugin, vim.env.VIMRUNTIME }
vim.opt.packpath = {}
vim.opt.swapfile = false
vim.opt.shadafile = 'NONE'
vim.opt.more = false
package.path = tests .. '/?.lua;' .. package.path

vim.g.stagerunner_tests = tests
vim.g.stagerunner_plugin = plugin
vim.cmd('runtime plugin/stagerunner.lua')
