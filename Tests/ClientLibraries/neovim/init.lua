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
package.path = here .. '/lua/?.lua;' .. package.path

vim.g.conformance_dir = here
