-- The user commands. Each is a thin layer over a feature module (render, run, validate,
-- templates, jobs).

local M = {}

local function complete_gen_ids(arg_lead)
  return require('stagerunner.workspace').complete_gen_ids(arg_lead)
end

local function complete_stages(arg_lead)
  return vim.tbl_filter(function(s)
    return s:sub(1, #arg_lead) == arg_lead
  end, require('stagerunner.workspace').STAGES)
end

local function complete_job_ids(arg_lead)
  return require('stagerunner.jobs').complete_job_ids(arg_lead)
end

local function complete_job_states(arg_lead)
  return vim.tbl_filter(function(s)
    return s:sub(1, #arg_lead) == arg_lead
  end, { 'pending', 'running', 'done', 'failed', 'cancelled', 'interrupted' })
end

M.commands = {
  StageRunnerRender = {
    desc = 'Render the prompt of the template in this buffer (or of a gen_id) into a split',
    nargs = '?',
    complete = complete_gen_ids,
    run = function(args)
      require('stagerunner.render').render({ gen_id = args.args })
    end,
  },
  StageRunnerRun = {
    desc = 'Run the stage of the template in this buffer (or of a gen_id); ! generates again',
    nargs = '?',
    bang = true,
    complete = complete_gen_ids,
    run = function(args)
      require('stagerunner.run').run({ gen_id = args.args, force = args.bang })
    end,
  },
  StageRunnerValidate = {
    desc = 'Check the workspace: problems become diagnostics and the quickfix list',
    nargs = 0,
    run = function()
      require('stagerunner.validate').validate()
    end,
  },
  StageRunnerTemplates = {
    desc = 'List the templates (of one stage) in the quickfix list',
    nargs = '?',
    complete = complete_stages,
    run = function(args)
      require('stagerunner.templates').list({ stage = args.args })
    end,
  },
  StageRunnerPipeline = {
    desc = 'Run the pipeline file of this buffer (or a path), input as JSON, and follow the job in a float',
    nargs = '*',
    complete = 'file',
    run = function(args)
      local jobs = require('stagerunner.jobs')
      local parsed, why = jobs.parse_args(args.args)
      if not parsed then
        vim.notify('StageRunner: ' .. why, vim.log.levels.ERROR)
        return
      end
      jobs.run({ file = parsed.file, input = parsed.input })
    end,
  },
  StageRunnerJobs = {
    desc = "List the workspace's jobs (of one state) in the quickfix list",
    nargs = '?',
    complete = complete_job_states,
    run = function(args)
      require('stagerunner.jobs').list({ state = args.args })
    end,
  },
  StageRunnerJobStatus = {
    desc = 'Follow a job in a float (its status, live)',
    nargs = '?',
    complete = complete_job_ids,
    run = function(args)
      require('stagerunner.jobs').status({ job_id = args.args })
    end,
  },
  StageRunnerCancel = {
    desc = 'Cancel a job (default: the job of the float)',
    nargs = '?',
    complete = complete_job_ids,
    run = function(args)
      require('stagerunner.jobs').cancel({ job_id = args.args })
    end,
  },
  StageRunnerStop = {
    desc = 'Shut the StageRunner servers down (the next command starts one again)',
    nargs = 0,
    run = function()
      require('stagerunner.client').stop_all()
    end,
  },
  StageRunnerLog = {
    desc = "Open the servers' log (their stderr)",
    nargs = 0,
    run = function()
      local log_file = require('stagerunner.config').options.log_file
      if not log_file then
        vim.notify('StageRunner: log_file is off; the server logs go to the LSP log', vim.log.levels.INFO)
        return
      end
      vim.cmd('split ' .. vim.fn.fnameescape(log_file))
    end,
  },
}

local registered = false

-- Defines the commands and the VimLeavePre hook, once.
function M.register()
  if registered then
    return
  end
  registered = true
  for name, def in pairs(M.commands) do
    vim.api.nvim_create_user_command(name, def.run, {
      desc = def.desc,
      nargs = def.nargs,
      bang = def.bang,
      complete = def.complete,
    })
  end
  local group = vim.api.nvim_create_augroup('stagerunner', { clear = true })
  vim.api.nvim_create_autocmd('VimLeavePre', {
    group = group,
    callback = function()
      require('stagerunner.client').leave_all()
    end,
  })
end

return M
