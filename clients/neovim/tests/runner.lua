-- A tiny test runner: each test_*.lua of a directory returns a list of { name, fn }; every test
-- runs in order, in this Neovim. Prints one line per test, a summary, and quits with status 1
-- when a test failed or none ran (0 otherwise).
--   STAGERUNNER_TEST_FILTER=<lua pattern> runs only the tests whose "file: name" matches it.
-- The plugin's tests call run() with no options; Tests/ClientLibraries/neovim (Neovim's own
-- clients, without the plugin) runs its tests on it with options of its own.

local M = {}

local function out(line)
  io.stdout:write(line .. '\n')
  io.stdout:flush()
end

local function now_ms()
  return (vim.uv or vim.loop).hrtime() / 1e6
end

-- The plugin's tests: reset the plugin's state before each test and at the end.
local function plugin_options()
  local helpers = require('helpers')
  return {
    dir = vim.g.stagerunner_tests,
    title = 'stagerunner.nvim tests',
    bin = helpers.bin,
    before = helpers.reset,
    finally = helpers.reset,
  }
end

-- options: dir (the test_*.lua files), title, bin (the server's path, for the banner), before
-- and after (run around each test; an error in after fails the test), finally, and strip_prefix
-- (name tests "rpc: …" rather than "test_rpc: …").
function M.run(options)
  local ok, err = xpcall(function()
    M.run_all(options or plugin_options())
  end, debug.traceback)
  if not ok then
    out('runner failed: ' .. tostring(err))
    vim.cmd('cquit 1')
  end
end

function M.run_all(options)
  local filter = vim.env.STAGERUNNER_TEST_FILTER
  local passed, failed, failures = 0, 0, {}
  local v = vim.version()
  out(string.format('%s on NVIM v%d.%d.%d, server %s', options.title, v.major, v.minor, v.patch, options.bin()))
  local files = vim.fn.glob(options.dir .. '/test_*.lua', false, true)
  table.sort(files)
  for _, file in ipairs(files) do
    local short = vim.fn.fnamemodify(file, ':t:r')
    if options.strip_prefix then
      short = short:gsub('^test_', '')
    end
    local loaded, tests = pcall(dofile, file)
    if not loaded then
      failed = failed + 1
      table.insert(failures, short .. ': cannot load: ' .. tostring(tests))
      out('not ok  ' .. short .. ' (load error)')
    else
      for _, t in ipairs(tests) do
        local name = short .. ': ' .. t[1]
        if not filter or name:match(filter) then
          if options.before then
            options.before()
          end
          local started = now_ms()
          local tok, terr = xpcall(t[2], debug.traceback)
          if options.after then
            local cleaned, cerr = pcall(options.after)
            if tok and not cleaned then
              tok, terr = false, 'cleanup failed: ' .. tostring(cerr)
            end
          end
          local ms = now_ms() - started
          if tok then
            passed = passed + 1
            out(string.format('ok      %s (%d ms)', name, ms))
          else
            failed = failed + 1
            table.insert(failures, name .. '\n' .. tostring(terr))
            out(string.format('not ok  %s (%d ms)', name, ms))
          end
        end
      end
    end
  end
  if options.finally then
    options.finally()
  end
  for _, f in ipairs(failures) do
    out('\nFAILED ' .. f)
  end
  out(string.format('\n%d passed, %d failed', passed, failed))
  if failed > 0 or passed == 0 then
    vim.cmd('cquit 1')
  else
    vim.cmd('qall!')
  end
end

return M
