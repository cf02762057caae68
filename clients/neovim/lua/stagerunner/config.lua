-- Options of the plugin: the defaults, and what setup() changed.

local M = {}

M.defaults = {
  -- The server executable, a string or a list (the executable and its first arguments, for
  -- example { 'swift', 'run', 'stagerunner' }). `serve --workspace <root>` and `args` follow it.
  cmd = 'stagerunner',
  -- More arguments after `serve --workspace <root>`, such as { '--log-level', 'info' }.
  args = {},
  -- Environment variables added to the server's environment (it inherits Neovim's).
  env = nil,
  -- The workspace root. nil: found from the buffer's file, the nearest directory above it that
  -- holds one of root_markers (else the current directory).
  workspace = nil,
  root_markers = { 'stagerunner.yaml', 'data/1_raw' },
  -- Where the server's stderr goes (appended). false leaves it to Neovim, which writes it to the
  -- LSP log (:lua vim.cmd('edit ' .. vim.lsp.get_log_path())); then the plugin cannot show the
  -- last lines of a server that exits. The file is used through /bin/sh, so not on Windows.
  log_file = vim.fn.stdpath('cache') .. '/stagerunner.log',
  -- The model sent with a template that no membership row uses (nil: none, the server asks).
  model = nil,
  -- Write a modified template buffer before :StageRunnerRender and :StageRunnerRun, as
  -- 'autowrite' does for :make. The server reads the file, not the buffer.
  write = true,
  -- How a results window opens, and whether the cursor moves into it.
  split = 'botright split',
  focus = false,
  -- Open the quickfix window when :StageRunnerValidate finds problems.
  open_quickfix = true,
  -- Say when a command starts (runStage can take a while with a real model).
  progress = true,
}

M.options = vim.deepcopy(M.defaults)

-- Top-level keys replace the defaults (lists such as cmd are replaced, not merged).
function M.setup(opts)
  opts = opts or {}
  if type(opts) ~= 'table' then
    error('stagerunner.setup: opts must be a table', 2)
  end
  for key, _ in pairs(opts) do
    if M.defaults[key] == nil and key ~= 'workspace' and key ~= 'model' and key ~= 'env' then
      vim.notify(string.format("StageRunner: unknown option '%s' ignored", key), vim.log.levels.WARN)
    end
  end
  M.options = vim.tbl_extend('force', vim.deepcopy(M.defaults), opts)
  return M.options
end

-- The server command as a list: cmd, then serve --workspace <root>, then args.
function M.command(root)
  local o = M.options
  local argv = type(o.cmd) == 'table' and vim.deepcopy(o.cmd) or { o.cmd }
  vim.list_extend(argv, { 'serve', '--workspace', root })
  vim.list_extend(argv, o.args or {})
  return argv
end

return M
