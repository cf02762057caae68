-- A tiny test runner: each tests/test_*.lua returns a list of { name, fn }; every test runs in
-- order, in this Neovim, with helpers.reset() before it. Prints one line per test, a summary,
-- and quits with status 1 when a test failed (0 otherwise).
--   STAGERUNNER_TEST_FILTER=<lua pattern> runs only the tests whose "file: name" matches it.

local M = {}

local function out(line)
  io.stdout:write(line .. '\n')
  io.stdout:flush()
end

function M.files()
  local dir = vim.g.stagerunner_tests
  local files = vim.fn.glob(dir .. '/test_*.lua', false, true)
  table.sort(files)
  return files
end

local function version()
  local v = vim.version()
  return string.format('%d.%d.%d', v.major, v.minor, v.patch)
end

function M.run()
  local ok, err = xpcall(M.run_all, debug.traceback)
  if not ok then
    out('runner failed: ' .. tostring(err))
    vim.cmd('cquit 1')
  end
end

function M.run_all()
  local helpers = require('helpers')
  local filter = vim.env.STAGERUNNER_TEST_FILTER
  local passed, failed, failures = 0, 0, {}
  out(string.format('stagerunner.nvim tests on NVIM v%s, server %s', version(), helpers.bin()))
  for _, file in ipairs(M.files()) do
    local short = vim.fn.fnamemodify(file, ':t:r')
    local ok, tests = pcall(dofile, file)
    if not ok then
      failed = failed + 1
      table.insert(failures, short .. ': cannot load: ' .. tostring(tests))
      out('not ok  ' .. short .. ' (load error)')
    else
      for _, t in ipairs(tests) do
        local name = short .. ': ' .. t[1]
        if not filter or name:match(filter) then
          helpers.reset()
          local started = (vim.uv or vim.loop).hrtime()
          local tok, err = xpcall(t[2], debug.traceback)
          local ms = ((vim.uv or vim.loop).hrtime() - started) / 1e6
          if tok then
            passed = passed + 1
            out(string.format('ok      %s (%d ms)', name, ms))
          else
            failed = failed + 1
            table.insert(failures, name .. '\n' .. tostring(err))
            out(string.format('not ok  %s (%d ms)', name, ms))
          end
        end
      end
    end
  end
  helpers.reset()
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
