-- The server driven by vim.lsp.rpc.start, as a Neovim user writes it: rpc.request(method,
-- params, callback), rpc.notify(method, params), and dispatchers for what the server sends.
-- Lua cannot tell {} from [], so params written {} go out as [] (vim.json.encode({}) == '[]').
local h = require('conformance.helpers')

-- Starts a server and sends initialize: the workspace from workspaceRoot, the stage handlers
-- (when given) from capabilities.stageHandlers. Returns the session and the initialize result.
local function start(ws, opts)
  opts = opts or {}
  local s = h.rpc_session({ server_request = opts.server_request, args = opts.args })
  local params = {
    processId = vim.fn.getpid(),
    clientInfo = { name = 'nvim-rpc-conformance', version = '1.0.0' },
    protocolVersion = '1.0',
    workspaceRoot = ws,
  }
  if opts.handlers then
    params.capabilities = { stageHandlers = opts.handlers }
  end
  local result = s.call('initialize', params)
  s.rpc.notify('initialized', {})
  return s, result
end

return {
  {
    'initialize: workspaceRoot, capabilities and their copy under experimental.stagerunner',
    function()
      local ws = h.workspace('daydream')
      local s, result = start(ws, { handlers = { 'grade' } })
      h.eq('1.0', result.protocolVersion, 'protocolVersion')
      h.eq('stagerunner', result.serverInfo.name, 'serverInfo.name')
      h.ok(type(result.serverInfo.version) == 'string' and result.serverInfo.version:match('^%d+%.%d+%.%d+'), 'serverInfo.version: ' .. vim.inspect(result.serverInfo.version))
      h.eq(h.realpath(ws), result.workspace.root, 'workspace.root')
      h.check_capabilities(result.capabilities)
      local _, again = s.try('initialize', { workspaceRoot = ws })
      h.error_code(-32600, again, 'a second initialize')
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'ping, listTemplates, validateWorkspace, listJobs with {} params (sent as [])',
    function()
      local ws = h.workspace('daydream')
      local s = start(ws)
      h.eq('[]', vim.json.encode({}), 'what {} becomes on the wire')
      h.empty_object(s.call('ping', {}), 'ping {}')
      h.empty_object(s.call('ping', nil), 'ping without params')
      h.empty_object(s.call('ping', vim.NIL), 'ping with params null')
      h.empty_object(s.call('ping', vim.empty_dict()), 'ping with params {}')
      h.eq({ echo = 'héllo' }, s.call('ping', { echo = 'héllo' }), 'ping echo')

      local listed = s.call('listTemplates', {})
      local ids = vim.tbl_map(function(t)
        return t.stage .. '/' .. t.id
      end, listed.templates)
      h.eq(h.DAYDREAM_TEMPLATES, ids, 'listTemplates {}')
      h.eq({
        active = true,
        description = 'Brainstorm connections between the concepts and end with the strongest idea',
        file = 'data/1_raw/templates/draft/creative-synthesis.txt',
        generator = 'llm',
        id = 'creative-synthesis',
        name = 'Creative Synthesis',
        parser = 'essay_idea_last',
        stage = 'draft',
      }, listed.templates[1], 'the first template')

      local report = s.call('validateWorkspace', {})
      h.eq(true, report.valid, 'validateWorkspace valid')
      h.eq(0, report.errors, 'errors')
      h.eq(0, report.warnings, 'warnings')
      h.eq(6, report.templates, 'templates')
      h.eq(10, report.generations, 'generations')
      h.eq(h.realpath(ws), report.root, 'root')
      h.eq({}, report.diagnostics, 'diagnostics')

      local jobs = s.call('listJobs', {})
      h.eq({}, jobs.jobs, 'listJobs {} in a workspace without jobs')
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'LSP notifications are ignored without an answer; unknown requests get -32601',
    function()
      local ws = h.workspace('daydream')
      local s = start(ws)
      local uri = vim.uri_from_fname(ws .. '/stagerunner.yaml')
      h.ok(s.rpc.notify('$/setTrace', { value = 'verbose' }), 'notify')
      s.rpc.notify('workspace/didChangeConfiguration', { settings = {} })
      s.rpc.notify('textDocument/didOpen', { textDocument = { uri = uri, languageId = 'yaml', version = 1, text = 'values: {}\n' } })
      s.rpc.notify('textDocument/didChange', { textDocument = { uri = uri, version = 2 }, contentChanges = { { text = 'values: {idea_count: 4}\n' } } })
      s.rpc.notify('textDocument/didSave', { textDocument = { uri = uri } })
      s.rpc.notify('textDocument/didClose', { textDocument = { uri = uri } })
      s.rpc.notify('$/cancelRequest', { id = 424242 })
      s.rpc.notify('$/cancelRequest', {})
      s.rpc.notify('initialized', {})
      h.empty_object(s.call('ping', {}), 'ping after the notifications')
      h.settle(300)
      h.eq({}, s.errors, 'answers to notifications (a response without a request is a client error)')
      h.eq({}, s.notifications, 'notifications from the server')

      local _, err = s.try('textDocument/hover', { textDocument = { uri = uri }, position = { line = 0, character = 0 } })
      h.error_code(-32601, err, 'textDocument/hover')
      h.eq('textDocument/hover', err.data and err.data.method, 'data.method')
      h.has(err.data.available, 'runStage', 'data.available')
      local _, err2 = s.try('workspace/executeCommand', { command = 'x', arguments = {} })
      h.error_code(-32601, err2, 'workspace/executeCommand')
      h.empty_object(s.call('ping', {}), 'ping at the end')
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'runStage {stage = "draft", genId = "d-creative"}: status and parsed text, then reused',
    function()
      local ws = h.workspace('daydream')
      local s = start(ws)
      local r = s.call('runStage', { stage = 'draft', genId = 'd-creative' })
      h.eq('d-creative', r.genId, 'genId')
      h.eq('draft', r.stage, 'stage')
      h.eq('success', r.status, 'status')
      h.eq(false, r.reused, 'reused')
      h.eq(false, r.textTruncated, 'textTruncated')
      h.eq(h.D_CREATIVE_PARSED, r.parsed, 'parsed')
      h.eq(h.read(ws .. '/responses/draft-creative.txt') .. '\n', r.raw, 'raw')
      h.eq(h.D_CREATIVE_FILES, r.files, 'files')
      h.eq('embedded', r.metadata.provider, 'metadata.provider')
      h.eq('sonnet-4', r.metadata.model, 'metadata.model')
      h.eq('creative-synthesis', r.metadata.template_id, 'metadata.template_id')
      h.eq('essay_idea_last', r.metadata.parser, 'metadata.parser')
      h.eq('success', r.metadata.status, 'metadata.status')
      h.eq(0, r.metadata.cost_usd, 'metadata.cost_usd')
      h.eq(h.D_CREATIVE_PARSED, h.read(ws .. '/data/gens/draft/d-creative/parsed.txt'), 'parsed.txt')
      local again = s.call('runStage', { stage = 'draft', genId = 'd-creative' })
      h.eq(true, again.reused, 'the second runStage reuses the generation')
      h.eq(r.metadata, again.metadata, 'the same metadata')
      local _, err = s.try('runStage', { stage = 'poem', genId = 'd-creative' })
      h.error_code(-32602, err, 'a bad stage')
      h.eq('params.stage', err.data.field, 'data.field')
    end,
  },
  {
    'subscribeStatus {} + runPipeline: statusChanged until the job is done, rev increasing',
    function()
      local ws = h.research_workspace()
      local s = start(ws)
      local sub = s.call('subscribeStatus', {})
      h.ok(sub.subscriptionId ~= nil, 'subscriptionId')
      h.eq(0, sub.rev, 'the baseline rev of every job')
      h.eq({ jobs = {} }, sub.snapshot, 'no job runs yet')
      local run = s.call('runPipeline', { pipeline = 'pipelines/research.pipeline.yaml', input = { topic = 'Kelp forests' } })
      local job = run.jobId
      h.ok(type(job) == 'string' and job:match('^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ%-%w+$'), 'jobId: ' .. vim.inspect(job))

      local function mine()
        return vim.tbl_filter(function(n)
          return n.method == 'statusChanged' and n.params.jobId == job
        end, s.notifications)
      end
      h.wait(function()
        local list = mine()
        local last = list[#list]
        return last ~= nil and last.params.snapshot ~= nil and last.params.snapshot.state == 'done'
      end, 'statusChanged with the job done', h.JOB_TIMEOUT)
      h.settle(500)
      local list = mine()
      h.eq('done', list[#list].params.snapshot.state, 'the last notification carries the final state')

      local prev, events = nil, {}
      for i, n in ipairs(list) do
        local p = n.params
        h.eq(sub.subscriptionId, p.subscriptionId, 'subscriptionId of notification ' .. i)
        h.ok(type(p.rev) == 'number' and type(p.coalesced) == 'number' and p.coalesced >= 1, 'rev and coalesced of notification ' .. i)
        h.ok(type(p.snapshot) == 'table', 'delivery snapshot: notification ' .. i .. ' has a snapshot')
        h.eq(p.rev, p.snapshot.rev, 'snapshot.rev of notification ' .. i)
        if prev then
          h.ok(p.rev > prev, string.format('rev increases: %d after %d', p.rev, prev))
          h.eq(prev + p.coalesced, p.rev, 'rev = previous rev + coalesced, notification ' .. i)
        end
        if p.coalesced > 1 then
          h.eq(p.coalesced, #p.events, 'events of a coalesced notification ' .. i)
        end
        vim.list_extend(events, h.events_of(p))
        prev = p.rev
      end
      local function seen(pred)
        for i, e in ipairs(events) do
          if pred(e) then
            return i
          end
        end
      end
      local running = seen(function(e) return e.type == 'job' and e.state == 'running' end)
      local done = seen(function(e) return e.type == 'job' and e.state == 'done' end)
      h.ok(running and done and running < done, 'job events running then done: ' .. vim.inspect(events))
      for _, t in ipairs({ 'summary', 'review' }) do
        local a = seen(function(e) return e.type == 'task' and e.task == t and e.state == 'running' end)
        local b = seen(function(e) return e.type == 'task' and e.task == t and e.state == 'done' end)
        h.ok(a and b and a < b, 'task ' .. t .. ' running then done')
      end
      h.ok(seen(function(e) return e.type == 'task' and e.task == 'summary' and e.state == 'refining' and e.refinementCycle == 1 end), 'summary refined once')

      local doc = list[#list].params.snapshot
      h.eq(job, doc.id, 'id')
      h.eq('research', doc.name, 'name')
      h.eq('pipelines/research.pipeline.yaml', doc.pipeline, 'pipeline')
      h.eq({ 'summary', 'review' }, doc.taskOrder, 'taskOrder')
      h.eq({ tasksDone = 2, tasksTotal = 2, percent = 100 }, doc.progress, 'progress')
      h.eq(nil, doc.current, 'current')
      h.eq(nil, doc.currentStage, 'currentStage')
      h.eq('done', doc.tasks.summary.state, 'summary')
      h.eq('done', doc.tasks.review.state, 'review')
      h.eq(1, doc.tasks.summary.attempts, 'summary attempts')
      h.eq(1, doc.tasks.summary.refinementAttempts, 'summary refinementAttempts')
      h.has(doc.tasks.summary.artifacts, 'tasks/summary/summary.json', 'summary artifacts')
      h.has(doc.tasks.review.artifacts, 'tasks/review/review.md', 'review artifacts')

      local st = s.call('getStatus', { jobId = job })
      h.eq(doc, st.status, 'getStatus is the last snapshot')
      h.eq({}, st.taskStages, 'taskStages of a done job (all null)')
      local jobs = s.call('listJobs', {}).jobs
      h.eq(1, #jobs, 'listJobs')
      h.eq(job, jobs[1].id, 'listJobs id')
      h.eq('done', jobs[1].state, 'listJobs state')
      h.eq(doc.rev, jobs[1].rev, 'listJobs rev')
      h.empty_object(s.call('unsubscribeStatus', { subscriptionId = sub.subscriptionId }), 'unsubscribeStatus')
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    '$/cancelRequest on a long runTask: -32800 (callback never called), ping goes on',
    function()
      vim.lsp.set_log_level('debug')
      local mark = h.log_mark()
      local ws = h.research_workspace()
      local s = start(ws)
      local called, replied = 0, false
      local sent_at = h.now_ms()
      local ok, id = s.rpc.request('runTask', { task = 'tasks/slow.task.yaml', runId = 'slow-1' }, function()
        called = called + 1
      end, function()
        replied = true
      end)
      h.ok(ok and type(id) == 'number', 'runTask sent')
      -- Let the command start, so that cancelling has to stop it.
      vim.wait(10000, function()
        return vim.fn.isdirectory(ws .. '/data/tasks/slow/slow-1') == 1
      end, 20)
      h.settle(500)
      h.ok(s.rpc.notify('$/cancelRequest', { id = id }), 'cancel sent')
      h.wait(function()
        return replied
      end, 'the answer to the cancelled runTask (the command sleeps 60 s)', 45000)
      h.ok(h.now_ms() - sent_at < 50000, 'answered before the command would have ended')
      h.settle(300)
      h.eq(0, called, 'vim.lsp.rpc drops the -32800 answer: the callback never runs')
      h.eq(true, h.logged_cancellation_acks(mark)[id], 'the answer was -32800 (LSP log: "Received cancellation ack" for id ' .. id .. ')')
      h.empty_object(s.call('ping', {}), 'ping after the cancel')
      h.eq({}, s.errors, 'client errors')
      local run = s.call('runTask', { task = 'tasks/nap.task.yaml', runId = 'nap-after-cancel' })
      h.eq(true, run.ok, 'a task after the cancel runs')
    end,
  },
  {
    'executeStage answered by the Lua handler {output = ..., flags = {}} (flags go out as [])',
    function()
      vim.lsp.set_log_level('debug')
      local mark = h.log_mark()
      local ws = h.workspace('daydream')
      local seen = {}
      local s = start(ws, {
        handlers = { 'grade' },
        server_request = function(method, params)
          if method ~= 'executeStage' then
            return nil, vim.lsp.rpc.rpc_response_error(-32601)
          end
          table.insert(seen, params)
          local words = #vim.split(params.context.output, ' ', { plain = true })
          return { output = { grade = 'A', words = words }, flags = {} }
        end,
      })
      local r = s.call('runTask', {
        task = {
          name = 'graded',
          stages = {
            ingestion = { template = { text = 'A draft about {{ input.topic }}.' } },
            validateQuality = { client = 'grade' },
          },
        },
        input = { topic = 'kelp' },
        runId = 'graded-1',
      })
      h.eq(1, #seen, 'one executeStage request')
      local p = seen[1]
      h.eq('grade', p.handler, 'params.handler')
      h.eq('validateQuality', p.stage, 'params.stage')
      h.eq('validateQuality', p.context.currentStage, 'context.currentStage')
      h.eq('A draft about kelp.', p.context.output, 'context.output')
      h.eq({ topic = 'kelp' }, p.context.data.seed, 'context.data.seed')
      h.eq('graded', p.context.meta.taskName, 'context.meta.taskName')
      h.eq('graded-1', p.context.meta.runId, 'context.meta.runId')
      h.eq(0, p.context.refinementCount, 'context.refinementCount')

      h.eq(true, r.ok, 'runTask ok: ' .. vim.inspect(r.error))
      h.eq({ grade = 'A', words = 4 }, r.context.data.validateQuality, 'the handler output')
      h.eq('A draft about kelp.', r.context.data.ingestion, 'ingestion output')
      h.eq({}, r.context.flags, 'flags (the handler sent [])')
      h.eq(0, r.refinementAttempts, 'refinementAttempts')
      local entry = vim.tbl_filter(function(l)
        return l.stage == 'validateQuality'
      end, r.logs)
      h.eq(1, #entry, 'one validateQuality log entry')
      h.eq(true, entry[1].ok, 'validateQuality ok')

      local ids = h.logged_request_ids('executeStage', mark)
      h.eq(1, #ids, 'executeStage requests in the LSP log')
      h.ok(ids[1]:match('^%d+$'), 'the executeStage id is an integer, got ' .. ids[1])
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'executeStage answers with flags null, without output, and [] as a whole',
    function()
      local ws = h.workspace('daydream')
      local got = {}
      local s = start(ws, {
        handlers = { 'shout', 'grade', 'empty' },
        server_request = function(method, params)
          if method ~= 'executeStage' then
            return nil, vim.lsp.rpc.rpc_response_error(-32601)
          end
          table.insert(got, params.handler)
          if params.handler == 'shout' then
            return { output = params.context.output:upper(), flags = vim.NIL } -- "flags":null
          elseif params.handler == 'grade' then
            return { flags = { validationFailed = false } } -- no output
          else
            return {} -- the whole answer is []
          end
        end,
      })
      local r = s.call('runTask', {
        task = {
          name = 'shapes',
          stages = {
            ingestion = { template = { text = 'A draft about {{ input.topic }}.' } },
            preProcessing = { client = 'shout' },
            validateQuality = { client = 'grade' },
            finalValidation = { client = 'empty' },
          },
        },
        input = { topic = 'kelp' },
        runId = 'shapes-1',
      })
      h.eq({ 'shout', 'grade', 'empty' }, got, 'handlers called in stage order')
      h.eq(true, r.ok, 'runTask ok: ' .. vim.inspect(r.error))
      h.eq('A DRAFT ABOUT KELP.', r.context.data.preProcessing, 'flags null: the output is kept')
      h.eq(nil, r.context.data.validateQuality, 'no output: null')
      h.eq(nil, r.context.data.finalValidation, '[]: output null')
      h.eq({ validationFailed = false }, r.context.flags, 'flags')
      for _, stage in ipairs({ 'preProcessing', 'validateQuality', 'finalValidation' }) do
        local entry = vim.tbl_filter(function(l)
          return l.stage == stage
        end, r.logs)[1]
        h.eq(true, entry and entry.ok, stage .. ' ok: ' .. vim.inspect(entry))
      end
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'shutdown is answered after the requests before it; then exit: status 0',
    function()
      local ws = h.research_workspace()
      local s = start(ws)
      local order = {}
      local function record(name)
        return function(err, result)
          table.insert(order, { name = name, err = err, result = result })
        end
      end
      s.rpc.request('runTask', { task = 'tasks/nap.task.yaml', runId = 'nap-1' }, record('runTask'))
      s.rpc.request('shutdown', nil, record('shutdown'))
      s.rpc.request('listTemplates', {}, record('late'))
      h.wait(function()
        return #order == 3
      end, 'three answers')
      local at = {}
      for i, o in ipairs(order) do
        at[o.name] = i
      end
      h.ok(at.runTask < at.shutdown, 'runTask is answered before shutdown: ' .. vim.inspect(vim.tbl_map(function(o) return o.name end, order)))
      local run = order[at.runTask]
      h.eq(nil, run.err, 'runTask error')
      h.eq(true, run.result.ok, 'runTask ok')
      h.eq('slept 1', run.result.context.data.ingestion, 'the command answered')
      h.eq(nil, order[at.shutdown].err, 'shutdown error')
      h.eq(nil, order[at.shutdown].result, 'shutdown result null')
      h.error_code(-32600, order[at.late].err, 'a request after shutdown')
      h.ok(s.rpc.notify('exit'), 'exit sent')
      local exit = s.wait_exit()
      h.eq({ code = 0, signal = 0 }, exit, 'on_exit after shutdown and exit')
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'exit without shutdown: status 1',
    function()
      local ws = h.workspace('daydream')
      local s = start(ws)
      h.empty_object(s.call('ping', {}), 'ping')
      s.rpc.notify('exit')
      h.eq({ code = 1, signal = 0 }, s.wait_exit(), 'on_exit')
    end,
  },
}
