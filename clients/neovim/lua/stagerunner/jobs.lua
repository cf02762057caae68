-- Pipelines and jobs: :StageRunnerPipeline (runPipeline), :StageRunnerJobStatus (getStatus),
-- :StageRunnerJobs (listJobs), :StageRunnerCancel (cancelJob), and the floating window that
-- follows a job live through subscribeStatus and its statusChanged notifications
-- (protocol sections 8.9 to 8.11).
--
-- A view is one followed job: its document and rev, its subscription, and its float. The
-- statusChanged handler is registered when this module loads, before any subscribeStatus is
-- sent. Notifications arrive outside the main loop, so they are scheduled; answers are too, in
-- the order both came in. A notification of a subscription whose subscribeStatus answer has not
-- been handled yet is kept until that answer gives the baseline, then applied if its rev is
-- above it.

local client = require('stagerunner.client')
local workspace = require('stagerunner.workspace')

local M = {}

M.views = {} -- jobId -> view
local by_subscription = {} -- subscriptionId -> view
local early = {} -- Client -> list of statusChanged params whose subscription is not known yet
local subscribing = {} -- Client -> number of subscribeStatus requests not answered yet

local ENDED = { done = true, failed = true, cancelled = true, interrupted = true }
M.ENDED = ENDED

local function first_line(text)
  text = tostring(text or '')
  return (text:match('^[^\n]*'))
end

local function val(x)
  if x == nil or x == vim.NIL then
    return nil
  end
  return x
end

-- computeTaskStage (protocol section 8.10): the stage a display shows for a task.
function M.task_stage(doc, name)
  local t = (doc.tasks or {})[name] or {}
  local err = val(t.error)
  return val(t.currentStage)
    or (val(doc.current) == name and val(doc.currentStage) or nil)
    or val(t.failedStage)
    or (type(err) == 'table' and val(err.stage) or nil)
end

local function tokens(usage)
  return type(usage) == 'table' and tonumber(val(usage.totalTokens)) or 0
end

local function dollars(x)
  return string.format('$%.4f', tonumber(val(x)) or 0)
end

-- The float's lines for a status document.
--   research · 20261122T020104Z-0315
--   state: running · 54% · 1/2 tasks · 1234 tokens · $0.0000
--
--   summary  done       stage -          cycle 1   1234 tokens  $0.0000  attempts 1
--   review   running    stage inference  cycle 0      0 tokens  $0.0000  attempts 1
--
-- and once the job has ended a last line: 'done · artifacts in jobs/<jobId>/', 'failed in
-- <task>/<stage>: <message> · ...', 'cancelled in <task>/<stage> · ...'.
function M.lines(doc)
  local id = val(doc.id) or '?'
  local progress = type(doc.progress) == 'table' and doc.progress or {}
  local lines = {
    string.format('%s · %s', val(doc.name) or '?', id),
    string.format(
      'state: %s · %d%% · %d/%d tasks · %d tokens · %s',
      val(doc.state) or '?',
      tonumber(val(progress.percent)) or 0,
      tonumber(val(progress.tasksDone)) or 0,
      tonumber(val(progress.tasksTotal)) or 0,
      tokens(doc.tokenUsage),
      dollars(doc.cost)
    ),
    '',
  }
  local order = type(doc.taskOrder) == 'table' and doc.taskOrder or vim.tbl_keys(doc.tasks or {})
  local name_width, stage_width = 1, 1
  for _, name in ipairs(order) do
    name_width = math.max(name_width, #name)
    stage_width = math.max(stage_width, #(M.task_stage(doc, name) or '-'))
  end
  for _, name in ipairs(order) do
    local t = (doc.tasks or {})[name] or {}
    local state = val(t.state) or '?'
    if t.retrying == true then
      state = state .. ' (retrying)'
    end
    table.insert(lines, string.format(
      '%-' .. name_width .. 's  %-9s  stage %-' .. stage_width .. 's  cycle %d  %5d tokens  %s  attempts %d',
      name,
      state,
      M.task_stage(doc, name) or '-',
      tonumber(val(t.refinementAttempts)) or 0,
      tokens(t.tokenUsage),
      dollars(t.cost),
      tonumber(val(t.attempts)) or 0
    ))
  end
  local state = val(doc.state)
  if ENDED[state] then
    table.insert(lines, '')
    local where = 'artifacts in jobs/' .. id .. '/'
    if state == 'done' then
      table.insert(lines, 'done · ' .. where)
    elseif state == 'failed' then
      local err = type(val(doc.error)) == 'table' and doc.error or {}
      local task = val(err.task) or val(doc.current) or '?'
      local stage = val(err.stage) or val(((doc.tasks or {})[task] or {}).failedStage) or val(doc.currentStage) or '?'
      table.insert(lines, string.format('failed in %s/%s: %s · %s', task, stage, first_line(val(err.message) or 'no message'), where))
    elseif state == 'cancelled' then
      local c = type(val(doc.cancelled)) == 'table' and doc.cancelled or {}
      if val(c.task) then
        table.insert(lines, string.format('cancelled in %s/%s · %s', c.task, val(c.stage) or '-', where))
      else
        table.insert(lines, 'cancelled before it started · ' .. where)
      end
    else
      table.insert(lines, string.format('%s (left running by a server that stopped; resumeJob continues it) · %s', state, where))
    end
  end
  return lines
end

-- The float --------------------------------------------------------------------------------

local function float_config(lines)
  local width = 20
  for _, l in ipairs(lines) do
    width = math.max(width, vim.fn.strdisplaywidth(l))
  end
  local columns, rows = vim.o.columns, vim.o.lines - vim.o.cmdheight
  width = math.min(width, math.max(columns - 4, 10))
  local height = math.min(#lines, math.max(rows - 4, 1))
  return {
    relative = 'editor',
    width = width,
    height = height,
    row = math.max(math.floor((rows - height) / 2) - 1, 0),
    col = math.max(math.floor((columns - width) / 2), 0),
  }
end

local function render(view)
  if not view.doc or not view.buf or not vim.api.nvim_buf_is_valid(view.buf) then
    return
  end
  local lines = M.lines(view.doc)
  if view.server_gone and not ENDED[val(view.doc.state)] then
    vim.list_extend(lines, { '', 'the server stopped: no more updates (:StageRunnerJobStatus ' .. view.job_id .. ' follows it again)' })
  end
  vim.bo[view.buf].modifiable = true
  vim.api.nvim_buf_set_lines(view.buf, 0, -1, false, lines)
  vim.bo[view.buf].modifiable = false
  vim.bo[view.buf].modified = false
  if view.win and vim.api.nvim_win_is_valid(view.win) then
    vim.api.nvim_win_set_config(view.win, float_config(lines))
  end
  local state = val(view.doc.state)
  if ENDED[state] and not view.announced then
    view.announced = true
    if view.on_end then
      pcall(view.on_end, view)
    end
  end
end

local function unsubscribe(view)
  local sub = view.subscription
  if sub then
    by_subscription[sub] = nil
    view.subscription = nil
    if view.client and view.client.state == 'ready' then
      view.client:request('unsubscribeStatus', { subscriptionId = sub }, function() end)
    end
  end
end

-- Closing the float (q, :close, wiping the buffer) ends the view and its subscription.
-- from: 'buffer' (it is being wiped) or 'window' (it has closed): leave them to Neovim.
local function close_view(view, from)
  if view.closed then
    return
  end
  view.closed = true
  if M.views[view.job_id] == view then
    M.views[view.job_id] = nil
  end
  if M.last == view then
    M.last = nil
  end
  unsubscribe(view)
  if from == nil and view.win and vim.api.nvim_win_is_valid(view.win) then
    pcall(vim.api.nvim_win_close, view.win, true)
  end
  if from ~= 'buffer' and view.buf and vim.api.nvim_buf_is_valid(view.buf) then
    vim.schedule(function()
      if vim.api.nvim_buf_is_valid(view.buf) and vim.fn.bufwinid(view.buf) == -1 then
        pcall(vim.api.nvim_buf_delete, view.buf, { force = true })
      end
    end)
  end
end

local function open_float(view)
  local buf = vim.api.nvim_create_buf(false, true)
  pcall(vim.api.nvim_buf_set_name, buf, 'stagerunner://job/' .. view.job_id)
  vim.bo[buf].buftype = 'nofile'
  vim.bo[buf].bufhidden = 'wipe'
  vim.bo[buf].swapfile = false
  vim.bo[buf].modifiable = false
  vim.api.nvim_buf_set_var(buf, 'stagerunner_job', view.job_id)
  vim.api.nvim_buf_set_keymap(buf, 'n', 'q', '<Cmd>close<CR>', { noremap = true, silent = true, nowait = true })
  view.buf = buf
  local lines = { 'job ' .. view.job_id, 'state: waiting for the server' }
  local cfg = float_config(lines)
  cfg.style = 'minimal'
  cfg.border = 'rounded'
  view.win = vim.api.nvim_open_win(buf, true, cfg)
  vim.wo[view.win].wrap = false
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.api.nvim_create_autocmd({ 'BufWipeout', 'BufUnload' }, {
    buffer = buf,
    once = true,
    callback = function()
      close_view(view, 'buffer')
    end,
  })
  vim.api.nvim_create_autocmd('WinClosed', {
    pattern = tostring(view.win),
    once = true,
    callback = function()
      close_view(view, 'window')
    end,
  })
end

-- Notifications ----------------------------------------------------------------------------

-- Applies one statusChanged to its view (snapshot delivery: the document replaces the held one).
local function apply(view, params)
  if view.closed then
    return
  end
  local rev = tonumber(params.rev) or -1
  if view.rev and rev <= view.rev then
    return -- old: at or below the rev held
  end
  if type(params.snapshot) == 'table' then
    view.doc = params.snapshot
    view.rev = rev
    table.insert(view.revs, rev)
    render(view)
  elseif params.patch then
    -- Not asked for (delivery "snapshot"); resync from getStatus if a server sends one.
    M.refresh(view)
  end
end

local function on_status_changed(params, c)
  vim.schedule(function()
    local view = by_subscription[params.subscriptionId]
    if view then
      return apply(view, params)
    end
    if (subscribing[c] or 0) > 0 then
      early[c] = early[c] or {}
      table.insert(early[c], params)
    end
    -- Otherwise the subscription has ended: nothing to show.
  end)
end

client.on_notification('statusChanged', on_status_changed)
M._on_status_changed = on_status_changed -- for the tests

local function subscribed(c)
  subscribing[c] = math.max((subscribing[c] or 1) - 1, 0)
end

-- Subscribes a view to its job; the baseline replaces the document, then the notifications
-- that came before the answer are applied.
local function subscribe(view)
  local c = view.client
  subscribing[c] = (subscribing[c] or 0) + 1
  c:request('subscribeStatus', { jobId = view.job_id, delivery = 'snapshot' }, function(err, result)
    subscribed(c)
    local kept = {}
    for _, p in ipairs(early[c] or {}) do
      if result and p.subscriptionId == result.subscriptionId then
        table.insert(kept, p)
      end
    end
    if (subscribing[c] or 0) == 0 then
      early[c] = nil
    elseif result then
      early[c] = vim.tbl_filter(function(p)
        return p.subscriptionId ~= result.subscriptionId
      end, early[c] or {})
    end
    if err then
      require('stagerunner.errors').report('subscribeStatus', err)
      return
    end
    if view.closed then
      c:request('unsubscribeStatus', { subscriptionId = result.subscriptionId }, function() end)
      return
    end
    view.subscription = result.subscriptionId
    by_subscription[result.subscriptionId] = view
    local rev = tonumber(result.rev) or 0
    if type(result.snapshot) == 'table' and (not view.rev or rev > view.rev) then
      view.doc = result.snapshot
      view.rev = rev
      table.insert(view.revs, rev)
      render(view)
    end
    for _, p in ipairs(kept) do
      apply(view, p)
    end
  end)
end

-- Views ------------------------------------------------------------------------------------

-- Opens (or focuses) the float of a job and follows it. opts: on_end(view) once it has ended,
-- client (default the root's).
function M.follow(root, job_id, opts)
  opts = opts or {}
  local view = M.views[job_id]
  if view and not view.closed and not view.server_gone then
    if view.win and vim.api.nvim_win_is_valid(view.win) then
      vim.api.nvim_set_current_win(view.win)
    end
    return view
  end
  -- One float at a time: the previous one closes (and unsubscribes).
  for _, other in pairs(M.views) do
    close_view(other)
  end
  view = {
    root = root,
    job_id = job_id,
    client = opts.client or client.get(root),
    revs = {}, -- the revs shown, in order (baseline and notifications)
    on_end = opts.on_end,
  }
  M.views[job_id] = view
  M.last = view
  -- The subscription ends with the server: say so in the float.
  view.client.on_exit = view.client.on_exit or {}
  table.insert(view.client.on_exit, function()
    if not view.closed then
      view.server_gone = true
      view.subscription = nil
      render(view)
    end
  end)
  open_float(view)
  subscribe(view)
  return view
end

-- Takes getStatus's document (after a patch this client did not ask for).
function M.refresh(view)
  view.client:request('getStatus', { jobId = view.job_id }, function(err, result)
    if err or view.closed then
      return
    end
    local doc = result.status
    if type(doc) == 'table' and (not view.rev or (tonumber(doc.rev) or 0) >= view.rev) then
      view.doc = doc
      view.rev = tonumber(doc.rev) or view.rev
      render(view)
    end
  end)
end

function M.close(job_id)
  local view = job_id and M.views[job_id] or M.last
  if view then
    close_view(view)
  end
end

-- The job of the float in the current window, else of the last float opened.
function M.current_job()
  local ok, id = pcall(vim.api.nvim_buf_get_var, 0, 'stagerunner_job')
  if ok and id then
    return id, M.views[id] and M.views[id].root
  end
  if M.last and not M.last.closed then
    return M.last.job_id, M.last.root
  end
  return nil
end

-- The workspace root a job command means: the float's, else the current buffer's.
local function root_here()
  local _, root = M.current_job()
  if root then
    return root
  end
  return workspace.root_for(vim.api.nvim_buf_get_name(0))
end

-- Commands ---------------------------------------------------------------------------------

-- ':StageRunnerPipeline [file] [json]' into file (or nil) and input (or nil), or nil, why.
function M.parse_args(text)
  text = vim.trim(text or '')
  if text == '' then
    return {}
  end
  local file, rest
  if text:match('^[%[{"]') then
    rest = text
  else
    file, rest = text:match('^(%S+)%s*(.*)$')
  end
  local input
  if rest and rest ~= '' then
    local ok, decoded = pcall(vim.json.decode, rest)
    if not ok then
      return nil, 'the input is not JSON: ' .. tostring(rest)
    end
    input = decoded
  end
  return { file = file, input = input }
end

-- opts: file (relative to the workspace, or absolute; default the current buffer's file),
-- input (any JSON value; default {}), name, bufnr, on_started(jobId, view), on_done(status, err)
-- once the job has ended (or the request failed).
function M.run(opts)
  opts = opts or {}
  local done = opts.on_done or function() end
  local bufnr = (opts.bufnr == nil or opts.bufnr == 0) and vim.api.nvim_get_current_buf() or opts.bufnr
  local root, pipeline
  local file = opts.file
  if file and file ~= '' then
    if file:sub(1, 1) == '/' then
      root = workspace.root_for(file)
      local abs = workspace.normalize(file)
      pipeline = abs:sub(1, #root + 1) == root .. '/' and abs:sub(#root + 2) or abs
    else
      root = workspace.root_for(vim.api.nvim_buf_get_name(bufnr))
      pipeline = file
    end
  else
    local name = vim.api.nvim_buf_get_name(bufnr)
    if name == '' or name:match('^%a[%w+.-]*://') then
      local why = 'this buffer is not a pipeline file; open one or give its path: :StageRunnerPipeline pipelines/<name>.pipeline.yaml'
      vim.notify('StageRunner: ' .. why, vim.log.levels.WARN)
      return done(nil, { message = why, client = true })
    end
    if vim.bo[bufnr].modified then
      vim.api.nvim_buf_call(bufnr, function()
        vim.cmd('silent write')
      end)
    end
    root = workspace.root_for(name)
    local abs = workspace.normalize(name)
    pipeline = abs:sub(1, #root + 1) == root .. '/' and abs:sub(#root + 2) or abs
  end
  local params = { pipeline = pipeline, input = opts.input == nil and vim.empty_dict() or opts.input }
  if opts.name then
    params.name = opts.name
  end
  if require('stagerunner.config').options.progress then
    vim.notify('StageRunner: starting ' .. pipeline, vim.log.levels.INFO)
  end
  client.call(root, 'runPipeline', params, function(result)
    local view = M.follow(root, result.jobId, {
      on_end = function(v)
        done(v.doc, nil)
      end,
    })
    if opts.on_started then
      opts.on_started(result.jobId, view)
    end
  end, function(err)
    done(nil, err)
  end)
end

-- :StageRunnerJobStatus <jobId>: the float of an existing job. getStatus checks the id (an
-- unknown one is a -32016 notified), then the float opens and subscribes.
function M.status(opts)
  opts = opts or {}
  local done = opts.on_done or function() end
  local job_id = opts.job_id
  if not job_id or job_id == '' then
    job_id = M.current_job()
  end
  if not job_id then
    local why = 'which job? :StageRunnerJobStatus <jobId> (:StageRunnerJobs lists them)'
    vim.notify('StageRunner: ' .. why, vim.log.levels.WARN)
    return done(nil, { message = why, client = true })
  end
  local root = opts.root or root_here()
  client.call(root, 'getStatus', { jobId = job_id }, function(result)
    local view = M.follow(root, job_id, {
      on_end = function(v)
        done(v.doc, nil)
      end,
    })
    if type(result.status) == 'table' and not view.doc then
      view.doc = result.status
      view.rev = tonumber(result.status.rev)
      table.insert(view.revs, view.rev)
      render(view)
    end
    if opts.on_open then
      opts.on_open(view)
    end
  end, function(err)
    done(nil, err)
  end)
end

-- :StageRunnerCancel [jobId]: cancelJob; the answer comes once the job has stopped.
function M.cancel(opts)
  opts = opts or {}
  local done = opts.on_done or function() end
  local job_id = opts.job_id
  local root = opts.root
  if not job_id or job_id == '' then
    job_id, root = M.current_job()
  end
  if not job_id then
    local why = 'which job? :StageRunnerCancel <jobId>, or run it from a job window'
    vim.notify('StageRunner: ' .. why, vim.log.levels.WARN)
    return done(nil, { message = why, client = true })
  end
  root = root or root_here()
  client.call(root, 'cancelJob', { jobId = job_id }, function(result)
    local view = M.views[job_id]
    local doc = result.status
    if view and type(doc) == 'table' and (not view.rev or (tonumber(doc.rev) or 0) > view.rev) then
      view.doc = doc
      view.rev = tonumber(doc.rev)
      table.insert(view.revs, view.rev)
      render(view)
    end
    vim.notify('StageRunner: job ' .. job_id .. ' cancelled', vim.log.levels.INFO)
    done(doc, nil)
  end, function(err)
    done(nil, err)
  end)
end

-- A quickfix entry for a listJobs job, at its status document.
function M.item(root, job)
  local progress = type(job.progress) == 'table' and job.progress or {}
  local text = string.format('%s %s: %s %d%%', job.id, val(job.name) or '?', val(job.state) or '?', tonumber(val(progress.percent)) or 0)
  if val(job.current) then
    text = text .. ' · ' .. job.current .. (val(job.currentStage) and ('/' .. job.currentStage) or '')
  end
  text = text .. ' · ' .. dollars(job.cost)
  return { filename = root .. '/jobs/' .. job.id .. '/tasks-status.json', lnum = 1, col = 1, text = text }
end

-- :StageRunnerJobs [state]: listJobs as the quickfix list, newest first. opts: state, open
-- (default true), on_done(result, err).
function M.list(opts)
  opts = opts or {}
  local done = opts.on_done or function() end
  local root = opts.root or root_here()
  local params = {}
  if opts.state and opts.state ~= '' then
    params.state = opts.state
  end
  client.call(root, 'listJobs', params, function(result)
    local items = {}
    for _, job in ipairs(result.jobs or {}) do
      table.insert(items, M.item(root, job))
    end
    vim.fn.setqflist({}, ' ', { title = 'StageRunner: jobs of ' .. root, items = items })
    if opts.open ~= false then
      vim.cmd('botright copen')
    end
    done(result, nil)
  end, function(err)
    done(nil, err)
  end)
end

-- Completion: the job ids in the workspace's jobs/ folder, newest first.
function M.complete_job_ids(arg_lead)
  local root = root_here()
  local ok, ids = pcall(vim.fn.readdir, root .. '/jobs')
  if not ok or type(ids) ~= 'table' then
    return {}
  end
  table.sort(ids, function(a, b)
    return a > b
  end)
  return vim.tbl_filter(function(id)
    return id:sub(1, #arg_lead) == arg_lead
  end, ids)
end

return M
