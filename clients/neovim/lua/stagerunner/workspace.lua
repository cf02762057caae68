-- The workspace as the editor sees it: where its root is, which template a buffer holds, and
-- which generation (membership row) a command means. The server does the real work; this
-- module only reads paths and the membership CSV files to pick the params of a request.

local config = require('stagerunner.config')

local M = {}

-- vim.loop is called vim.uv from 0.10 on.
local uv = vim.uv or vim.loop

M.STAGES = { 'draft', 'essay', 'evaluation' }
-- The stage whose generations feed each stage (protocol section 8.1).
M.PARENT_STAGE = { essay = 'draft', evaluation = 'essay' }

local function exists(path)
  return uv.fs_stat(path) ~= nil
end

local function parent_dir(path)
  return vim.fn.fnamemodify(path, ':h')
end

-- Absolute path, no trailing slash.
function M.normalize(path)
  local p = vim.fn.fnamemodify(path, ':p')
  if #p > 1 then
    p = p:gsub('/+$', '')
  end
  return p
end

function M.join(root, rel)
  return root .. '/' .. rel
end

-- A template file: { root, stage, template_id, file = path relative to root }, or nil.
function M.template_of(path)
  if not path or path == '' then
    return nil
  end
  local abs = M.normalize(path)
  local root, stage, id = abs:match('^(.*)/data/1_raw/templates/([^/]+)/([^/]+)%.txt$')
  if not root then
    return nil
  end
  if root == '' then
    root = '/'
  end
  return { root = root, stage = stage, template_id = id, file = 'data/1_raw/templates/' .. stage .. '/' .. id .. '.txt' }
end

-- The root last used by a command: buffers without a file (the quickfix list, results) use it.
M.last_root = nil

local function is_file_name(path)
  return path and path ~= '' and not path:match('^%a[%w+.-]*://')
end

local function find_root(path)
  if config.options.workspace then
    return M.normalize(config.options.workspace)
  end
  local t = M.template_of(path)
  if t then
    return t.root
  end
  if not is_file_name(path) then
    if M.last_root then
      return M.last_root
    end
    path = nil
  end
  local start = path and M.normalize(path) or M.normalize(vim.fn.getcwd())
  local stat = uv.fs_stat(start)
  if not stat or stat.type ~= 'directory' then
    start = parent_dir(start)
  end
  local dir = start
  while true do
    for _, marker in ipairs(config.options.root_markers) do
      if exists(M.join(dir, marker)) then
        return dir
      end
    end
    local up = parent_dir(dir)
    if up == dir then
      break
    end
    dir = up
  end
  return M.normalize(vim.fn.getcwd())
end

-- The workspace root for a path (a file or a directory): config.workspace; else the root of a
-- template path; else the nearest directory above it with one of config.root_markers. Without
-- a file name (nil, the quickfix list, a results buffer): the root last used, else the same
-- search from the current directory, else the current directory.
function M.root_for(path)
  local root = find_root(path)
  M.last_root = root
  return root
end

-- One CSV line into fields: commas, double quotes around fields, "" inside quotes.
-- (Fields that span lines are not supported; the membership files have none.)
function M.csv_fields(line)
  local fields, field, i, n = {}, {}, 1, #line
  local quoted = false
  while i <= n do
    local ch = line:sub(i, i)
    if quoted then
      if ch == '"' then
        if line:sub(i + 1, i + 1) == '"' then
          table.insert(field, '"')
          i = i + 1
        else
          quoted = false
        end
      else
        table.insert(field, ch)
      end
    elseif ch == '"' then
      quoted = true
    elseif ch == ',' then
      table.insert(fields, table.concat(field))
      field = {}
    elseif ch ~= '\r' then
      table.insert(field, ch)
    end
    i = i + 1
  end
  table.insert(fields, table.concat(field))
  return fields
end

-- Rows of a membership file's lines: tables keyed by the header, with file and line (1-based).
function M.parse_membership(lines, file)
  local rows, header = {}, nil
  for lnum, line in ipairs(lines) do
    if line:match('%S') then
      local fields = M.csv_fields(line)
      if not header then
        header = {}
        for i, name in ipairs(fields) do
          header[i] = vim.trim(name)
        end
      else
        local row = { file = file, line = lnum }
        for i, name in ipairs(header) do
          row[name] = vim.trim(fields[i] or '')
        end
        table.insert(rows, row)
      end
    end
  end
  return rows
end

function M.membership_files(root)
  local files = {}
  if exists(root .. '/data/membership.csv') then
    table.insert(files, root .. '/data/membership.csv')
  end
  local cohorts = vim.fn.glob(root .. '/data/cohorts/*/membership.csv', false, true)
  table.sort(cohorts)
  vim.list_extend(files, cohorts)
  return files
end

-- Every membership row of the workspace, in file order.
function M.membership(root)
  local rows = {}
  for _, file in ipairs(M.membership_files(root)) do
    local ok, lines = pcall(vim.fn.readfile, file)
    if ok then
      vim.list_extend(rows, M.parse_membership(lines, file))
    end
  end
  return rows
end

function M.is_generated(root, stage, gen_id)
  return exists(string.format('%s/data/gens/%s/%s/metadata.json', root, stage, gen_id))
end

-- The membership row a template is best rendered with: the first row using it whose parent has
-- been generated (or that has none), else the first row using it.
function M.row_for_template(root, stage, template_id)
  local first
  for _, row in ipairs(M.membership(root)) do
    if row.stage == stage and row.template_id == template_id then
      first = first or row
      local parent_stage = M.PARENT_STAGE[stage]
      if not parent_stage or row.parent_gen_id == '' or M.is_generated(root, parent_stage, row.parent_gen_id) then
        return row
      end
    end
  end
  return first
end

local function is_membership_file(path)
  return path:match('/data/membership%.csv$') or path:match('/data/cohorts/[^/]+/membership%.csv$')
end

-- What a command means in a buffer: { root, params, label, template } or nil and why.
--   gen_id given: that membership row (or, in a template buffer, that id with the template);
--   a template buffer: the template, with the membership row row_for_template picks;
--   a membership buffer: the row under the cursor.
function M.target(bufnr, gen_id)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local path = vim.api.nvim_buf_get_name(bufnr)
  local template = M.template_of(path)
  local root = M.root_for(path)

  if gen_id and gen_id ~= '' then
    for _, row in ipairs(M.membership(root)) do
      if row.gen_id == gen_id then
        return { root = root, params = { stage = row.stage, genId = gen_id }, label = row.stage .. '/' .. gen_id, row = row }
      end
    end
    if template then
      return {
        root = root,
        template = template,
        params = { stage = template.stage, templateId = template.template_id, genId = gen_id, model = config.options.model },
        label = template.stage .. '/' .. gen_id,
      }
    end
    return nil, string.format("'%s' is not a gen_id of the membership of %s", gen_id, root)
  end

  if template then
    local row = M.row_for_template(root, template.stage, template.template_id)
    if row then
      return {
        root = root,
        template = template,
        params = { stage = row.stage, genId = row.gen_id },
        label = row.stage .. '/' .. row.gen_id,
        row = row,
      }
    end
    return {
      root = root,
      template = template,
      params = { stage = template.stage, templateId = template.template_id, model = config.options.model },
      label = template.stage .. '/' .. template.template_id,
    }
  end

  if path ~= '' and is_membership_file(M.normalize(path)) then
    local lnum = vim.api.nvim_win_get_cursor(0)[1]
    local lines = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false)
    for _, row in ipairs(M.parse_membership(lines, path)) do
      if row.line == lnum then
        if row.stage == '' or row.gen_id == '' then
          break
        end
        return { root = root, params = { stage = row.stage, genId = row.gen_id }, label = row.stage .. '/' .. row.gen_id, row = row }
      end
    end
    return nil, 'put the cursor on a row of the membership file (not the header)'
  end

  return nil, 'this buffer is not a template (data/1_raw/templates/<stage>/<id>.txt) or a membership file; give a gen_id'
end

-- Writes a modified template buffer (config.write), since the server reads the file.
function M.save(bufnr, target)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  if not (config.options.write and target.template and vim.bo[bufnr].modified) then
    return
  end
  local ok, err = pcall(vim.api.nvim_buf_call, bufnr, function()
    vim.cmd('silent update')
  end)
  if not ok then
    vim.notify('StageRunner: could not write the template, the server reads the file as it is: ' .. tostring(err), vim.log.levels.WARN)
  end
end

-- gen_ids for command-line completion: the rows of the buffer's template first, then the rest.
function M.complete_gen_ids(prefix)
  local path = vim.api.nvim_buf_get_name(0)
  local template = M.template_of(path)
  local root = find_root(path)
  local first, rest = {}, {}
  for _, row in ipairs(M.membership(root)) do
    if row.gen_id:sub(1, #prefix) == prefix then
      local same = template and row.stage == template.stage and row.template_id == template.template_id
      table.insert(same and first or rest, row.gen_id)
    end
  end
  return vim.list_extend(first, rest)
end

return M
