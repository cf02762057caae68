-- What the tests share: the server binary, temporary copies of examples/daydream, waiting,
-- assertions, and vim.notify captured into helpers.notes.

local asserts = require('asserts')

local M = {}

M.plugin = vim.g.stagerunner_plugin
M.repo = vim.fn.fnamemodify(M.plugin, ':h:h')
M.example = M.repo .. '/examples/daydream'
M.notes = {}

function M.bin()
  local bin = vim.env.STAGERUNNER_BIN
  if not bin or bin == '' then
    bin = M.repo .. '/.build/debug/stagerunner'
  end
  return vim.fn.fnamemodify(bin, ':p')
end

-- A fresh copy of examples/daydream (or of examples/<name>); returns its absolute path.
function M.workspace(name)
  local example = name and (M.repo .. '/examples/' .. name) or M.example
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, 'p')
  local target = dir .. '/' .. vim.fn.fnamemodify(example, ':t')
  vim.fn.system({ 'cp', '-R', example, target })
  assert(vim.v.shell_error == 0, 'cannot copy ' .. example)
  return target
end

function M.write(path, lines)
  vim.fn.mkdir(vim.fn.fnamemodify(path, ':h'), 'p')
  vim.fn.writefile(lines, path)
end

function M.append(path, line)
  vim.fn.writefile({ line }, path, 'a')
end

function M.wait(cond, what, timeout)
  asserts.wait(cond, what, timeout or 15000, 3)
end

-- Calls fn(opts) with opts.on_done and waits for it: returns result, err.
function M.await(fn, opts)
  opts = opts or {}
  local done, result, err = false, nil, nil
  opts.on_done = function(r, e)
    done, result, err = true, r, e
  end
  fn(opts)
  M.wait(function()
    return done
  end, 'the callback')
  return result, err
end

M.eq = asserts.eq
M.ok = asserts.ok

function M.contains(haystack, needle, what)
  if type(haystack) ~= 'string' or not haystack:find(needle, 1, true) then
    error(string.format('%s: %s does not contain %s', what or 'text', vim.inspect(haystack), vim.inspect(needle)), 2)
  end
end

-- Captured notifications at level (or above, with at_least).
function M.notes_at(level)
  return vim.tbl_filter(function(n)
    return n.level == level
  end, M.notes)
end

function M.lines(bufname)
  local buf = vim.fn.bufnr(bufname)
  assert(buf ~= -1, 'no buffer ' .. bufname)
  return vim.api.nvim_buf_get_lines(buf, 0, -1, false)
end

function M.exists(path)
  return (vim.uv or vim.loop).fs_stat(path) ~= nil
end

function M.read(path)
  return table.concat(vim.fn.readfile(path), '\n')
end

-- Options every test starts from; a test may call setup() again with more.
function M.options(extra)
  M.log_file = M.log_file or (vim.fn.tempname() .. '-stagerunner.log')
  return vim.tbl_extend('force', { cmd = M.bin(), log_file = M.log_file, progress = false }, extra or {})
end

-- Between tests: stop every server (and wait for it), close windows and buffers, clear the
-- quickfix list and diagnostics, capture vim.notify afresh, default options.
function M.reset()
  local client = require('stagerunner.client')
  local jobs = package.loaded['stagerunner.jobs']
  if jobs then
    for id, _ in pairs(jobs.views) do
      jobs.close(id)
    end
  end
  client.stop_all(2000)
  M.wait(function()
    return #client.all() == 0
  end, 'the servers to stop', 5000)
  -- Not vim.diagnostic.reset(): on 0.7 it fails on wiped buffers that were never loaded.
  require('stagerunner.diagnostics').clear()
  vim.cmd('silent! only')
  vim.cmd('silent! %bwipeout!')
  vim.fn.setqflist({}, 'f')
  require('stagerunner.workspace').last_root = nil
  M.notes = {}
  vim.notify = function(msg, level)
    table.insert(M.notes, { msg = msg, level = level or vim.log.levels.INFO })
  end
  require('stagerunner').setup(M.options())
end

return M
