-- Pipelines and jobs: :StageRunnerPipeline and its float, followed through statusChanged,
-- :StageRunnerCancel, :StageRunnerJobs, :StageRunnerJobStatus, and a bad pipeline path.
local h = require('helpers')
local jobs = require('stagerunner.jobs')

local function float_lines(view)
  return vim.api.nvim_buf_get_lines(view.buf, 0, -1, false)
end

local function status_doc(name)
  return vim.json.decode(h.read(h.repo .. '/protocol/examples/status/' .. name .. '.json'))
end

-- Runs a pipeline with the command; returns the view once the job is in the float and ended.
local function run_to_end(cmd)
  vim.cmd(cmd)
  h.wait(function()
    return jobs.last ~= nil and jobs.last.doc ~= nil and jobs.ENDED[jobs.last.doc.state] ~= nil
  end, 'the job to end', 30000)
  return jobs.last
end

local function slow_workspace()
  local ws = h.workspace('research-task')
  h.write(ws .. '/tasks/slow.task.yaml', { 'stages: { ingestion: { command: [sleep, "30"] } }' })
  h.write(ws .. '/pipelines/slow.pipeline.yaml', { 'name: slow', 'tasks:', '  - task: ../tasks/slow.task.yaml' })
  return ws
end

return {
  {
    'arguments: a file, a file and JSON input, JSON input alone, bad JSON',
    function()
      h.eq({}, jobs.parse_args(''), 'none')
      h.eq({ file = 'p.yaml' }, jobs.parse_args('p.yaml'), 'file')
      h.eq({ file = 'pipelines/research.pipeline.yaml', input = { topic = 'Kelp forests' } },
        jobs.parse_args('pipelines/research.pipeline.yaml {"topic": "Kelp forests"}'), 'file and input')
      h.eq({ input = { 1, 2 } }, jobs.parse_args('[1, 2]'), 'input alone')
      local parsed, why = jobs.parse_args('p.yaml {topic}')
      h.eq(nil, parsed, 'bad JSON')
      h.contains(why, 'the input is not JSON: {topic}')
    end,
  },
  {
    'the lines of a failed and a cancelled document (protocol/examples/status)',
    function()
      local failed = jobs.lines(status_doc('failed'))
      h.contains(failed[#failed], 'failed in flaky/ingestion: command ')
      h.contains(failed[#failed], ' · artifacts in jobs/' .. status_doc('failed').id .. '/')
      local cancelled = jobs.lines(status_doc('cancelled'))
      h.eq('slow · 20261122T020105Z-734e', cancelled[1], 'title')
      h.eq('state: cancelled · 9% · 0/1 tasks · 0 tokens · $0.0000', cancelled[2], 'job line')
      h.eq('slow  cancelled  stage ingestion  cycle 0      0 tokens  $0.0000  attempts 1', cancelled[4], 'task line')
      h.eq('cancelled in slow/ingestion · artifacts in jobs/20261122T020105Z-734e/', cancelled[6], 'final line')
      local pending = jobs.lines(status_doc('pending'))
      h.eq(nil, pending[#pending]:find('artifacts', 1, true), 'no final line while pending')
    end,
  },
  {
    ':StageRunnerPipeline runs the research pipeline and follows it to done in a float',
    function()
      local ws = h.workspace('research-task')
      vim.cmd('edit ' .. ws .. '/stagerunner.yaml')
      local view = run_to_end('StageRunnerPipeline pipelines/research.pipeline.yaml {"topic":"Kelp"}')
      local doc = view.doc
      h.eq('done', doc.state, 'job state')
      local lines = float_lines(view)
      h.eq('research · ' .. view.job_id, lines[1], 'title')
      h.eq(string.format('state: done · 100%% · 2/2 tasks · %d tokens · $%.4f', doc.tokenUsage.totalTokens, doc.cost), lines[2], 'job line')
      local function task_line(name, cycle)
        local t = doc.tasks[name]
        return string.format('%-7s  done       stage -  cycle %d  %5d tokens  $%.4f  attempts 1', name, cycle, t.tokenUsage.totalTokens, t.cost)
      end
      h.eq(task_line('summary', 1), lines[4], 'summary')
      h.eq(task_line('review', 0), lines[5], 'review')
      h.eq('done · artifacts in jobs/' .. view.job_id .. '/', lines[#lines], 'final line')
      h.ok(doc.tasks.summary.tokenUsage.totalTokens > 0, 'the summary used tokens')
      h.ok(h.exists(ws .. '/jobs/' .. view.job_id .. '/tasks/summary/summary.json'), 'the artifact')
      h.eq({ 'summary', 'review' }, doc.taskOrder, 'task order')
      h.eq('Kelp', vim.json.decode(h.read(ws .. '/jobs/' .. view.job_id .. '/input.json')).topic, 'the input')
      local cfg = vim.api.nvim_win_get_config(view.win)
      h.eq('editor', cfg.relative, 'a float')
      h.eq(#lines, cfg.height, 'as high as its lines')
      h.eq(view.win, vim.api.nvim_get_current_win(), 'focused')
      -- revs only go up, and the last is the final document's
      for i = 2, #view.revs do
        h.ok(view.revs[i] > view.revs[i - 1], 'revs increase: ' .. vim.inspect(view.revs))
      end
      h.eq(doc.rev, view.revs[#view.revs], 'the last rev shown')
      h.eq(0, #h.notes_at(vim.log.levels.ERROR) + #h.notes_at(vim.log.levels.WARN), 'no complaints')
    end,
  },
  {
    'the pipeline of the current buffer: input {} fails in ingestion (failedStage and message shown)',
    function()
      local ws = h.workspace('research-task')
      vim.cmd('edit ' .. ws .. '/pipelines/research.pipeline.yaml')
      local view = run_to_end('StageRunnerPipeline')
      h.eq('{}', h.read(ws .. '/jobs/' .. view.job_id .. '/input.json'):gsub('%s', ''), 'input {}')
      h.eq({
        'research · ' .. view.job_id,
        'state: failed · 4% · 0/2 tasks · 0 tokens · $0.0000',
        '',
        'summary  failed     stage ingestion  cycle 0      0 tokens  $0.0000  attempts 1',
        'review   pending    stage -          cycle 0      0 tokens  $0.0000  attempts 0',
        '',
        "failed in summary/ingestion: command python3 stages/ingest.py exited with status 2: the input needs a non-empty 'topic' · artifacts in jobs/" .. view.job_id .. '/',
      }, float_lines(view), 'the float')
    end,
  },
  {
    'input alone runs the pipeline of the current buffer; q closes the float and unsubscribes',
    function()
      local ws = h.workspace('research-task')
      vim.cmd('edit ' .. ws .. '/pipelines/research.pipeline.yaml')
      local view = run_to_end('StageRunnerPipeline {"topic": "Kelp forests"}')
      h.eq('done', view.doc.state, 'job state')
      h.eq('Kelp forests', vim.json.decode(h.read(ws .. '/jobs/' .. view.job_id .. '/input.json')).topic, 'the input')
      local sub = view.subscription
      h.ok(sub, 'subscribed')
      local c = view.client
      local unsubscribed = false
      local request = c.request
      c.request = function(self, method, params, cb)
        if method == 'unsubscribeStatus' and params.subscriptionId == sub then
          return request(self, method, params, function(err, result)
            unsubscribed = err == nil and result ~= nil
            if cb then
              cb(err, result)
            end
          end)
        end
        return request(self, method, params, cb)
      end
      vim.api.nvim_set_current_win(view.win)
      vim.cmd('normal q')
      c.request = nil
      h.eq(false, vim.api.nvim_win_is_valid(view.win), 'closed')
      h.wait(function()
        return unsubscribed
      end, 'unsubscribeStatus answered')
      h.eq(nil, jobs.views[view.job_id], 'the view is gone')
      h.eq(true, view.closed, 'closed')
    end,
  },
  {
    'notifications: kept until the subscribeStatus answer, then applied by rev; old ones skipped',
    function()
      local ws = h.workspace('research-task')
      local sent = {}
      local fake = {
        state = 'ready',
        request = function(_, method, params, cb)
          table.insert(sent, { method = method, params = params, cb = cb })
        end,
      }
      local function doc(rev, state)
        local d = status_doc(state == 'done' and 'done' or 'running-in-stage')
        d.rev = rev
        return d
      end
      local view = jobs.follow(ws, 'job-x', { client = fake })
      h.eq('subscribeStatus', sent[1].method, 'subscribed')
      h.eq({ jobId = 'job-x', delivery = 'snapshot' }, sent[1].params, 'params')
      local function note(sub, rev, coalesced, state)
        jobs._on_status_changed({ subscriptionId = sub, jobId = 'job-x', rev = rev, coalesced = coalesced, snapshot = doc(rev, state) }, fake)
      end
      -- before the answer: kept
      note('sub-9', 2, 1)
      note('sub-9', 3, 1)
      note('sub-other', 5, 1)
      vim.wait(50)
      h.eq({}, view.revs, 'nothing shown before the answer')
      sent[1].cb(nil, { subscriptionId = 'sub-9', rev = 2, snapshot = doc(2) })
      h.eq({ 2, 3 }, view.revs, 'the baseline, then the kept notification above it')
      note('sub-9', 3, 1) -- old
      note('sub-9', 6, 3) -- coalesced
      note('sub-9', 5, 1) -- old
      note('sub-9', 7, 1, 'done')
      vim.wait(50)
      h.eq({ 2, 3, 6, 7 }, view.revs, 'revs shown')
      local lines = float_lines(view)
      h.eq('done · artifacts in jobs/' .. status_doc('done').id .. '/', lines[#lines], 'the final document')
      vim.api.nvim_set_current_win(view.win)
      vim.cmd('normal q')
      vim.wait(50)
      h.eq('unsubscribeStatus', sent[#sent].method, 'unsubscribed on close')
      h.eq({ subscriptionId = 'sub-9' }, sent[#sent].params, 'its subscription')
      note('sub-9', 8, 1)
      vim.wait(50)
      h.eq({ 2, 3, 6, 7 }, view.revs, 'nothing after close')
    end,
  },
  {
    ':StageRunnerCancel cancels the job of the float; it shows the task and stage',
    function()
      local ws = slow_workspace()
      vim.cmd('edit ' .. ws .. '/pipelines/slow.pipeline.yaml')
      vim.cmd('StageRunnerPipeline')
      h.wait(function()
        local v = jobs.last
        return v and v.doc and v.doc.state == 'running' and v.doc.tasks.slow.currentStage == 'ingestion'
      end, 'the slow stage to run')
      local view = jobs.last
      h.eq(view.win, vim.api.nvim_get_current_win(), 'in the float')
      vim.cmd('StageRunnerCancel')
      h.wait(function()
        return view.doc.state == 'cancelled'
      end, 'the job to be cancelled')
      local lines = float_lines(view)
      h.eq('state: cancelled · 9% · 0/1 tasks · 0 tokens · $0.0000', lines[2], 'job line')
      h.eq('slow  cancelled  stage ingestion  cycle 0      0 tokens  $0.0000  attempts 1', lines[4], 'task line')
      h.eq('cancelled in slow/ingestion · artifacts in jobs/' .. view.job_id .. '/', lines[#lines], 'final line')
      h.wait(function()
        for _, n in ipairs(h.notes) do
          if n.msg == 'StageRunner: job ' .. view.job_id .. ' cancelled' then
            return true
          end
        end
        return false
      end, 'the notification')
      -- cancelling again: the job is not running (-32016 invalid_state)
      local _, err = h.await(jobs.cancel, { job_id = view.job_id })
      h.eq(-32016, err.code, 'code')
      h.eq('invalid_state', err.data.reason, 'reason')
    end,
  },
  {
    'when the server stops, the float shows the job cancelled by exit; a new session follows it again',
    function()
      local ws = slow_workspace()
      vim.cmd('edit ' .. ws .. '/pipelines/slow.pipeline.yaml')
      vim.cmd('StageRunnerPipeline')
      h.wait(function()
        local v = jobs.last
        return v and v.doc and v.doc.state == 'running' and v.doc.tasks.slow.currentStage == 'ingestion'
      end, 'the slow stage to run')
      local view = jobs.last
      vim.cmd('StageRunnerStop')
      h.wait(function()
        return view.server_gone
      end, 'the server to exit')
      local lines = float_lines(view)
      -- exit cancels the job, and the server tells its subscribers before it closes
      h.eq('cancelled in slow/ingestion · artifacts in jobs/' .. view.job_id .. '/', lines[#lines], 'last line')
      h.eq('cancelled', view.doc.state, 'the last state seen')
      -- the next session shows it cancelled where exit stopped it
      vim.cmd('StageRunnerJobStatus ' .. view.job_id)
      h.wait(function()
        local v = jobs.views[view.job_id]
        return v and v ~= view and v.doc and v.doc.state == 'cancelled'
      end, 'the job in a new float')
      local again = float_lines(jobs.views[view.job_id])
      h.eq('cancelled in slow/ingestion · artifacts in jobs/' .. view.job_id .. '/', again[#again], 'final line')
    end,
  },
  {
    ':StageRunnerJobs lists the jobs in the quickfix list; :StageRunnerJobStatus opens one',
    function()
      local ws = h.workspace('research-task')
      vim.cmd('edit ' .. ws .. '/stagerunner.yaml')
      local view = run_to_end('StageRunnerPipeline pipelines/research.pipeline.yaml {"topic":"Kelp"}')
      local id, cost = view.job_id, view.doc.cost
      jobs.close(id)
      vim.cmd('edit ' .. ws .. '/stagerunner.yaml')
      vim.cmd('StageRunnerJobs')
      h.wait(function()
        return (vim.fn.getqflist({ title = 1 }).title or ''):find('jobs of', 1, true) ~= nil
      end, 'the quickfix list')
      h.eq('StageRunner: jobs of ' .. ws, vim.fn.getqflist({ title = 1 }).title, 'title')
      local items = vim.fn.getqflist()
      h.eq(1, #items, 'one job')
      h.eq(string.format('%s research: done 100%% · $%.4f', id, cost), items[1].text, 'entry')
      h.eq(ws .. '/jobs/' .. id .. '/tasks-status.json', vim.api.nvim_buf_get_name(items[1].bufnr), 'at its status document')
      h.eq({ id }, vim.fn.getcompletion('StageRunnerJobStatus 2', 'cmdline'), 'job ids completed')
      vim.cmd('wincmd p')
      vim.cmd('StageRunnerJobStatus ' .. id)
      h.wait(function()
        return jobs.views[id] and jobs.views[id].subscription ~= nil
      end, 'the float of the job')
      local again = jobs.views[id]
      local lines = float_lines(again)
      h.eq('done · artifacts in jobs/' .. id .. '/', lines[#lines], 'final line')
      h.eq('research · ' .. id, lines[1], 'title')
    end,
  },
  {
    'a pipeline path that is not there is notified (-32015) and opens no float',
    function()
      local ws = h.workspace('research-task')
      vim.cmd('edit ' .. ws .. '/stagerunner.yaml')
      local _, err = h.await(jobs.run, { file = 'pipelines/missing.pipeline.yaml' })
      h.eq(-32015, err.code, 'code')
      h.eq('pipeline', err.data.kind, 'kind')
      local errors = h.notes_at(vim.log.levels.ERROR)
      h.eq(1, #errors, 'one error')
      h.contains(errors[1].msg, 'StageRunner: runPipeline failed: ' .. err.message .. ' [-32015 Task]')
      h.eq(nil, jobs.last, 'no float')
      h.eq(1, #vim.api.nvim_tabpage_list_wins(0), 'one window')
    end,
  },
  {
    ':StageRunnerJobStatus of an unknown job is notified (-32016)',
    function()
      local ws = h.workspace('research-task')
      vim.cmd('edit ' .. ws .. '/stagerunner.yaml')
      local _, err = h.await(jobs.status, { job_id = '20200101T000000Z-0000' })
      h.eq(-32016, err.code, 'code')
      h.contains(h.notes_at(vim.log.levels.ERROR)[1].msg, '[-32016 Job]')
      h.eq(nil, jobs.last, 'no float')
    end,
  },
}
