-- The results window: read-only scratch buffers named stagerunner://<kind>/<name>, shown in a
-- split that is reused for the same kind (render, run, ...). `q` closes it.

local config = require('stagerunner.config')

local M = {}

local buffers = {} -- buffer name -> bufnr
M.data = {} -- bufnr -> the result shown in it

local function find_window(kind)
  for _, win in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    local buf = vim.api.nvim_win_get_buf(win)
    local ok, k = pcall(vim.api.nvim_buf_get_var, buf, 'stagerunner_kind')
    if ok and k == kind then
      return win
    end
  end
  return nil
end

local function buffer(name, kind)
  local buf = buffers[name]
  if buf and vim.api.nvim_buf_is_valid(buf) then
    return buf
  end
  buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_name(buf, name)
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'hide'
  vim.bo[buf].swapfile = false
  vim.api.nvim_buf_set_var(buf, 'stagerunner_kind', kind)
  vim.api.nvim_buf_set_keymap(buf, 'n', 'q', '<Cmd>silent! close<CR>', { noremap = true, silent = true, nowait = true })
  buffers[name] = buf
  return buf
end

-- Shows lines in the window of kind, in a buffer called stagerunner://<kind>/<name>.
-- opts: filetype, data (kept in M.data[bufnr]), focus (default config.focus).
-- Returns bufnr, winid.
function M.show(kind, name, lines, opts)
  opts = opts or {}
  local buf = buffer('stagerunner://' .. kind .. '/' .. name, kind)
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
  if opts.filetype then
    vim.bo[buf].filetype = opts.filetype
  end
  M.data[buf] = opts.data

  local from = vim.api.nvim_get_current_win()
  local win = vim.fn.bufwinid(buf)
  if win == -1 then
    win = find_window(kind)
  end
  if not win or win == -1 then
    vim.cmd(config.options.split)
    win = vim.api.nvim_get_current_win()
  end
  vim.api.nvim_win_set_buf(win, buf)
  vim.api.nvim_win_set_cursor(win, { 1, 0 })
  local focus = opts.focus
  if focus == nil then
    focus = config.options.focus
  end
  if focus then
    vim.api.nvim_set_current_win(win)
  elseif vim.api.nvim_win_is_valid(from) then
    vim.api.nvim_set_current_win(from)
  end
  return buf, win
end

-- A text as lines (nil: a placeholder).
function M.text_lines(text, placeholder)
  if text == nil or text == vim.NIL then
    return { placeholder or '(none)' }
  end
  return vim.split(text, '\n', { plain = true })
end

-- A Lua value as key: value lines, keys sorted, nested tables indented.
function M.value_lines(value, indent)
  indent = indent or ''
  local lines = {}
  if type(value) ~= 'table' then
    return { indent .. tostring(value) }
  end
  local keys = vim.tbl_keys(value)
  table.sort(keys, function(a, b)
    return tostring(a) < tostring(b)
  end)
  local is_list = (vim.islist or vim.tbl_islist)(value)
  for _, k in ipairs(keys) do
    local v = value[k]
    local label = is_list and '-' or (tostring(k) .. ':')
    if type(v) == 'table' and next(v) ~= nil then
      local all_scalars = true
      for _, x in pairs(v) do
        if type(x) == 'table' then
          all_scalars = false
        end
      end
      if all_scalars and (vim.islist or vim.tbl_islist)(v) then
        local parts = {}
        for _, x in ipairs(v) do
          table.insert(parts, tostring(x))
        end
        table.insert(lines, indent .. label .. ' ' .. table.concat(parts, ', '))
      else
        table.insert(lines, indent .. label)
        vim.list_extend(lines, M.value_lines(v, indent .. '  '))
      end
    elseif type(v) == 'table' then
      table.insert(lines, indent .. label .. ' {}')
    elseif v == vim.NIL then
      table.insert(lines, indent .. label .. ' null')
    else
      local text = tostring(v)
      if type(v) == 'string' and text:find('\n') then
        table.insert(lines, indent .. label .. ' |')
        for _, l in ipairs(vim.split(text, '\n', { plain = true })) do
          table.insert(lines, indent .. '  ' .. l)
        end
      else
        table.insert(lines, indent .. label .. ' ' .. text)
      end
    end
  end
  return lines
end

return M
