-- StageRunner for Neovim: render prompts, run stages and check workspaces through
-- `stagerunner serve` (JSON-RPC 2.0, protocol 1.0).
--
--   require('stagerunner').setup({ cmd = 'stagerunner' })
--
-- See :help stagerunner.

local M = {}

function M.setup(opts)
  require('stagerunner.config').setup(opts)
  require('stagerunner.commands').register()
  return M
end

-- The Lua API behind the commands; each takes an opts table with an on_done(result, err)
-- callback (see the modules).
function M.render(opts)
  return require('stagerunner.render').render(opts)
end

function M.run(opts)
  return require('stagerunner.run').run(opts)
end

function M.validate(opts)
  return require('stagerunner.validate').validate(opts)
end

function M.templates(opts)
  return require('stagerunner.templates').list(opts)
end

function M.stop()
  return require('stagerunner.client').stop_all()
end

-- Any request, for methods without a command: callback(err, result).
function M.request(method, params, callback, root)
  local workspace = require('stagerunner.workspace')
  root = root or workspace.root_for(vim.api.nvim_buf_get_name(0))
  return require('stagerunner.client').get(root):request(method, params, callback)
end

return M
