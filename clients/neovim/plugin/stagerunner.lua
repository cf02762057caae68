-- StageRunner: user commands (:StageRunnerRender, :StageRunnerRun, :StageRunnerValidate,
-- :StageRunnerTemplates, :StageRunnerPipeline, :StageRunnerJobStatus, :StageRunnerJobs,
-- :StageRunnerCancel, :StageRunnerStop, :StageRunnerLog). Options: require('stagerunner').setup().
if vim.g.loaded_stagerunner then
  return
end
vim.g.loaded_stagerunner = true

if vim.fn.has('nvim-0.7') == 0 then
  vim.api.nvim_err_writeln('stagerunner.nvim needs Neovim 0.7 or later')
  return
end

require('stagerunner.commands').register()
