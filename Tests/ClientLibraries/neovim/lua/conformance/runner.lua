-- The conformance tests run on the plugin's test runner (clients/neovim/tests/runner.lua: test
-- infrastructure only; the plugin itself is not loaded). After each test, the servers it left
-- running are stopped.
--   STAGERUNNER_TEST_FILTER=<lua pattern> runs the tests whose "file: name" matches it.
local M = {}

function M.run()
  local h = require('conformance.helpers')
  require('runner').run({
    dir = vim.g.conformance_dir,
    title = 'stagerunner conformance (Neovim clients)',
    bin = h.bin,
    after = h.cleanup,
    strip_prefix = true,
  })
end

return M
