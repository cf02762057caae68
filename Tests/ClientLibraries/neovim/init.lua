-- Neovim for the conformance tests: nothing of the user's and no plugin (not even
-- clients/neovim), only $VIMRUNTIME, so vim.lsp is used exactly as Neovim ships it.
--   nvim --headless --noplugin -u Tests/ClientLibraries/neovim/init.lua \
--     -c "lua require('conformance.runner').run()"
local here = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h')

vim.opt.runtimepath = { vim.env.VIMRUNTIME }
vim.opt.packpath = {}
vim.opt.swapfile = false
vim.opt.shadafile = 'NONE'
vim.opt.more = false
-- The plugin's test runner (not the plugin) is shared with clients/neovim/tests.
local runner = vim.fn.fnamemodify(here, ':h:h:h') .. '/clients/neovim/tests'
package.path = here .. '/lua/?.lua;' .. runner .. '/?.lua;' .. package.path

vim.g.conformance_dir = here
