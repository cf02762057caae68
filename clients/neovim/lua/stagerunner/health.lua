-- :checkhealth stagerunner: Neovim's version, the server executable, the log file.

local M = {}

-- 0.7 has require('health').report_*; 0.8+ vim.health.report_*; 0.10+ vim.health.start/ok/...
local function api()
  local h = vim.health or require('health')
  return {
    start = h.start or h.report_start,
    ok = h.ok or h.report_ok,
    warn = h.warn or h.report_warn,
    error = h.error or h.report_error,
    info = h.info or h.report_info,
  }
end

function M.check()
  local health = api()
  local config = require('stagerunner.config')
  health.start('stagerunner.nvim')

  local v = vim.version()
  local version = string.format('%d.%d.%d', v.major, v.minor, v.patch)
  if vim.fn.has('nvim-0.7') == 1 then
    health.ok(string.format('Neovim %s (vim.lsp.rpc.start takes %s)', version, require('stagerunner.rpc').cmd_is_list and 'a command list' or 'cmd, args'))
  else
    health.error('Neovim ' .. version .. ': 0.7 or later is needed')
  end

  local argv = config.command('<root>')
  local exe = vim.fn.exepath(argv[1])
  if exe == '' then
    health.error(string.format("'%s' is not executable", argv[1]), {
      "put stagerunner on PATH, or require('stagerunner').setup({ cmd = '/path/to/stagerunner' })",
    })
  else
    local out = vim.fn.system({ exe, '--version' })
    if vim.v.shell_error == 0 then
      health.ok(string.format('server: %s, %s', exe, vim.trim(out):match('^[^\n;]*')))
    else
      health.warn(string.format('server: %s, but `--version` failed: %s', exe, vim.trim(out)))
    end
  end
  health.info('started as: ' .. table.concat(argv, ' '))

  local log_file = config.options.log_file
  if log_file then
    health.info('server stderr: ' .. log_file .. ' (:StageRunnerLog)')
  else
    health.info('server stderr: the LSP log, ' .. vim.lsp.get_log_path())
  end
end

return M
