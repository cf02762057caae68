-- The runner: each test_*.lua next to init.lua returns a list of { name, fn }. Every test runs in
-- order in this Neovim; after each one, the servers it left running are stopped. Prints one line
-- per test and a summary, and quits with status 1 when a test failed or none ran.
--   STAGERUNNER_TEST_FILTER=<lua pattern> runs the tests whose "file: name" matches it.

local M = {}

local function out(line)
  io.stdout:write(line .. '\n')
  io.stdout:flush()
end

local function now_ms()
  return (vim.uv or vim.loop).hrtime() / 1e6
end

function M.run()
  local ok, err = xpcall(M.run_all, debug.traceback)
  if not ok then
    out('runner failed: ' .. tostring(err))
    vim.cmd('cquit 1')
  end
end

function M.run_all()
  local h = require('conformance.helpers')
  local filter = vim.env.STAGERUNNER_TEST_FILTER
  local v = vim.version()
  out(string.format('stagerunner conformance (Neovim clients) on NVIM v%d.%d.%d, server %s', v.major, v.minor, v.patch, h.bin()))
  local files = vim.fn.glob(vim.g.conformance_dir .. '/test_*.lua', false, true)
  table.sort(files)
  local passed, failed, failures = 0, 0, {}
  for _, file in ipairs(files) do
    local short = vim.fn.fnamemodify(file, ':t:r'):gsub('^test_', '')
    local loaded, tests = pcall(dofile, file)
    if not loaded then
      failed = failed + 1
      table.insert(failures, short .. ': cannot load: ' .. tostring(tests))
      out('not ok  ' .. short .. ' (load error)')
    else
      for _, t in ipairs(tests) do
        local name = short .. ': ' .. t[1]
        if not filter or name:match(filter) then
          local started = now_ms()
          local tok, terr = xpcall(t[2], debug.traceback)
          local cleaned, cerr = pcall(h.cleanup)
          if tok and not cleaned then
            tok, terr = false, 'cleanup failed: ' .. tostring(cerr)
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
