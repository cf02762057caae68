-- The server driven by Neovim's standard LSP client, vim.lsp.start_client{cmd, root_dir,
-- handlers, init_options, ...}: it sends initialize with rootUri, rootPath and workspaceFolders
-- (from root_dir) and its own LSP capabilities, then initialized; client.request(method, params,
-- handler), client.notify, client.cancel_request(id) ($/cancelRequest) and client.stop()
-- (shutdown, then exit). The server starts in an empty directory, so the workspace can only come
-- from initialize.
local h = require('conformance.helpers')

-- Starts a client on ws, stops it with client.stop() and returns the workspace root that
-- initialize answered (config adds init_options, before_init, ...).
local function root_from(ws, config)
  local s = h.lsp_session(vim.tbl_extend('force', { root_dir = ws }, config or {}))
  local root = s.init_result.workspace and s.init_result.workspace.root
  s.client.stop()
  h.eq({ code = 0, signal = 0 }, s.wait_exit(), 'exit after client.stop()')
  return root
end

return {
  {
    'initialize: the workspace from root_dir (rootUri, percent-decoded); server_capabilities',
    function()
      local ws = h.workspace('daydream', 'dír with space')
      local uri = vim.uri_from_fname(ws)
      -- Neovim writes the escapes in lower case: d%c3%adr%20with%20space.
      h.ok(uri:find('%20', 1, true) and uri:lower():find('%c3%ad', 1, true), 'rootUri is percent-encoded: ' .. uri)
      local s = h.lsp_session({ root_dir = ws })
      local result = s.init_result
      h.eq(h.realpath(ws), result.workspace.root, 'workspace.root (from rootUri ' .. uri .. ')')
      h.eq('1.0', result.protocolVersion, 'protocolVersion')
      h.eq('stagerunner', result.serverInfo.name, 'serverInfo.name')
      h.check_capabilities(result.capabilities)
      h.eq(result.capabilities, s.client.server_capabilities, 'client.server_capabilities')
      h.eq(true, s.client.initialized, 'client.initialized')
      h.eq(uri, s.client.workspace_folders[1].uri, 'the workspace folder Neovim sent')
      if vim.fn.has('nvim-0.8') == 0 then
        -- 0.7 resolves the LSP features it may use: Neovim sent LSP capabilities, so the server
        -- offers its language features (full document sync, hover, completion, definition), and
        -- not what it does not have (formatting).
        local rc = s.client.resolved_capabilities
        h.eq(true, rc.text_document_open_close, 'resolved_capabilities.text_document_open_close')
        h.eq(vim.lsp.protocol.TextDocumentSyncKind.Full, rc.text_document_did_change, 'resolved_capabilities.text_document_did_change')
        h.eq(true, rc.hover, 'resolved_capabilities.hover')
        h.eq(true, rc.completion, 'resolved_capabilities.completion')
        h.eq(false, rc.document_formatting, 'resolved_capabilities.document_formatting')
        h.eq(true, rc.goto_definition, 'resolved_capabilities.goto_definition')
      end
      h.empty_object(s.call('ping', {}), 'ping')
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'initialize: workspaceRoot, then initializationOptions.workspaceRoot, rootUri, rootPath, workspaceFolders',
    function()
      local a = h.workspace('daydream', 'a')
      local b = h.workspace('daydream', 'b b')
      local ra, rb = h.realpath(a), h.realpath(b)
      h.eq(rb, root_from(a, { init_options = { workspaceRoot = b } }), 'initializationOptions.workspaceRoot over rootUri')
      h.eq(rb, root_from(a, {
        init_options = { workspaceRoot = a },
        before_init = function(params)
          params.workspaceRoot = b
        end,
      }), 'workspaceRoot over initializationOptions.workspaceRoot')
      h.eq(ra, root_from(a, {
        before_init = function(params)
          params.rootPath = b
        end,
      }), 'rootUri over rootPath')
      h.eq(rb, root_from(a, {
        before_init = function(params)
          params.rootUri = vim.NIL
          params.rootPath = b
        end,
      }), 'rootPath when rootUri is null')
      h.eq(rb, root_from(a, {
        before_init = function(params)
          params.rootUri = vim.NIL
          params.rootPath = vim.NIL
          params.workspaceFolders = {
            { uri = vim.uri_from_fname(b), name = 'b b' },
            { uri = vim.uri_from_fname(a), name = 'a' },
          }
        end,
      }), 'the first workspace folder when rootUri and rootPath are null')
    end,
  },
  {
    'ping, listTemplates, validateWorkspace, listJobs with {} params (sent as [])',
    function()
      local ws = h.workspace('daydream')
      local s = h.lsp_session({ root_dir = ws })
      h.empty_object(s.call('ping', {}), 'ping {}')
      h.empty_object(s.call('ping', nil), 'ping without params')
      h.eq({ echo = { 1, 'two' } }, s.call('ping', { echo = { 1, 'two' } }), 'ping echo')
      local listed = s.call('listTemplates', {})
      h.eq(h.DAYDREAM_TEMPLATES, vim.tbl_map(function(t)
        return t.stage .. '/' .. t.id
      end, listed.templates), 'listTemplates {}')
      local report = s.call('validateWorkspace', {})
      h.eq(true, report.valid, 'valid')
      h.eq(0, report.errors, 'errors')
      h.eq(6, report.templates, 'templates')
      h.eq(10, report.generations, 'generations')
      h.eq(h.realpath(ws), report.root, 'root')
      h.eq({}, s.call('listJobs', {}).jobs, 'listJobs {}')
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'LSP notifications get no answer; hover is served to an LSP client; unknown requests get -32601',
    function()
      local ws = h.workspace('daydream')
      local s = h.lsp_session({ root_dir = ws })
      local uri = vim.uri_from_fname(ws .. '/stagerunner.yaml')
      h.ok(s.client.notify('$/setTrace', { value = 'off' }), 'notify')
      s.client.notify('workspace/didChangeConfiguration', { settings = {} })
      s.client.notify('workspace/didChangeWorkspaceFolders', { event = { added = {}, removed = {} } })
      s.client.notify('textDocument/didOpen', { textDocument = { uri = uri, languageId = 'yaml', version = 0, text = '' } })
      s.client.notify('textDocument/didClose', { textDocument = { uri = uri } })
      h.empty_object(s.call('ping', {}), 'ping after the notifications')
      h.settle(300)
      h.eq({}, s.errors, 'answers to notifications (a response without a request is a client error)')
      local _, err = s.try('textDocument/hover', { textDocument = { uri = uri }, position = { line = 0, character = 0 } })
      h.eq(nil, err, 'textDocument/hover is answered (nothing to show at the start of stagerunner.yaml)')
      local _, err2 = s.try('workspace/symbol', { query = '' })
      h.error_code(-32601, err2, 'workspace/symbol')
      h.empty_object(s.call('ping', {}), 'ping at the end')
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'runStage {stage = "draft", genId = "d-creative"}: status and parsed text',
    function()
      local ws = h.workspace('daydream')
      local s = h.lsp_session({ root_dir = ws })
      local r = s.call('runStage', { stage = 'draft', genId = 'd-creative' })
      h.eq('success', r.status, 'status')
      h.eq(false, r.reused, 'reused')
      h.eq('d-creative', r.genId, 'genId')
      h.eq(h.D_CREATIVE_PARSED, r.parsed, 'parsed')
      h.eq(h.D_CREATIVE_FILES, r.files, 'files')
      h.eq('essay_idea_last', r.metadata.parser, 'metadata.parser')
      h.eq('embedded', r.metadata.provider, 'metadata.provider')
      h.eq(h.D_CREATIVE_PARSED, h.read(ws .. '/data/gens/draft/d-creative/parsed.txt'), 'parsed.txt')
      local essay = s.call('runStage', { stage = 'essay', genId = 'e-creative-copy' })
      h.eq('success', essay.status, 'the copy essay')
      h.eq(h.D_CREATIVE_PARSED, essay.parsed, 'the copy essay is the draft parsed')
      h.eq(nil, essay.raw, 'no raw for a copy')
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'subscribeStatus {delivery = "patch"} + runPipeline: patches applied by rev give the final document',
    function()
      local ws = h.research_workspace()
      local notes = {}
      local s = h.lsp_session({
        root_dir = ws,
        handlers = {
          statusChanged = function(_, params)
            table.insert(notes, params)
          end,
        },
      })
      local sub = s.call('subscribeStatus', { delivery = 'patch' })
      h.eq(0, sub.rev, 'baseline rev')
      local job = s.call('runPipeline', { pipeline = 'pipelines/research.pipeline.yaml', input = { topic = 'Tide pools' } }).jobId
      local doc, rev, applied, failure = nil, nil, 0, nil
      local function apply_new()
        while applied < #notes do
          applied = applied + 1
          local p = notes[applied]
          h.eq(job, p.jobId, 'jobId of notification ' .. applied)
          h.eq(sub.subscriptionId, p.subscriptionId, 'subscriptionId of notification ' .. applied)
          if applied == 1 then
            h.ok(type(p.snapshot) == 'table', 'a job seen for the first time comes as a snapshot')
          end
          if p.snapshot then
            h.ok(rev == nil or p.rev == rev + p.coalesced, 'a snapshot follows the rev held')
            doc = vim.deepcopy(p.snapshot)
          else
            h.eq(rev, p.baseRev, 'baseRev of notification ' .. applied .. ' is the rev held')
            h.ok(type(p.patch) == 'table', 'patch of notification ' .. applied)
            h.apply_patch(doc, p.patch)
            h.eq(rev + p.coalesced, p.rev, 'rev = baseRev + coalesced')
          end
          h.eq(p.rev, doc.rev, 'the document at notification ' .. applied .. ' has its rev')
          h.ok(rev == nil or p.rev > rev, 'rev increases')
          rev = p.rev
        end
      end
      h.wait(function()
        local ok, err = pcall(apply_new)
        if not ok then
          failure = err
          return true
        end
        return doc ~= nil and doc.state == 'done'
      end, 'the job to be done', h.JOB_TIMEOUT)
      if failure then
        error(failure, 0)
      end
      h.settle(500)
      h.eq(applied, #notes, 'no notification after the one that says done')
      h.ok(applied >= 2, 'patches were sent: ' .. applied .. ' notifications')
      local st = s.call('getStatus', { jobId = job })
      h.eq(st.status, doc, 'the patched document is getStatus\'s')
      h.eq({ tasksDone = 2, tasksTotal = 2, percent = 100 }, doc.progress, 'progress')
      h.eq('done', doc.tasks.summary.state, 'summary')
      h.eq('done', doc.tasks.review.state, 'review')
      h.empty_object(s.call('unsubscribeStatus', { subscriptionId = sub.subscriptionId }), 'unsubscribeStatus')
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'client.cancel_request on a long runTask: -32800 (handler never called), ping goes on',
    function()
      vim.lsp.set_log_level('debug')
      local mark = h.log_mark()
      local ws = h.research_workspace()
      local s = h.lsp_session({ root_dir = ws })
      local called = 0
      local sent_at = h.now_ms()
      local ok, id = s.client.request('runTask', { task = 'tasks/slow.task.yaml', runId = 'slow-1' }, function()
        called = called + 1
      end)
      h.ok(ok and type(id) == 'number', 'runTask sent')
      h.eq('pending', s.client.requests[id] and s.client.requests[id].type, 'client.requests[id]')
      vim.wait(10000, function()
        return vim.fn.isdirectory(ws .. '/data/tasks/slow/slow-1') == 1
      end, 20)
      h.settle(500)
      s.client.cancel_request(id)
      h.eq('cancel', s.client.requests[id] and s.client.requests[id].type, 'client.requests[id] after cancel_request')
      h.wait(function()
        return s.client.requests[id] == nil
      end, 'the answer to the cancelled runTask (the command sleeps 60 s)', 45000)
      h.ok(h.now_ms() - sent_at < 50000, 'answered before the command would have ended')
      h.settle(300)
      h.eq(0, called, 'the -32800 answer never reaches the handler')
      h.eq(true, h.logged_cancellation_acks(mark)[id], 'the answer was -32800 (LSP log: "Received cancellation ack" for id ' .. id .. ')')
      h.empty_object(s.call('ping', {}), 'ping after the cancel')
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'executeStage handled by handlers.executeStage, declared in init_options.stageHandlers',
    function()
      vim.lsp.set_log_level('debug')
      local mark = h.log_mark()
      local ws = h.workspace('daydream')
      local seen = {}
      local s = h.lsp_session({
        root_dir = ws,
        init_options = { stageHandlers = { 'grade' } },
        handlers = {
          executeStage = function(_, params, ctx)
            table.insert(seen, { params = params, method = ctx.method })
            return { output = { grade = 'B', chars = #params.context.output }, flags = {} }
          end,
        },
      })
      local r = s.call('runTask', {
        task = {
          name = 'graded',
          stages = {
            ingestion = { template = { text = 'Notes on {{ input.topic }}.' } },
            validateQuality = { client = 'grade' },
          },
        },
        input = { topic = 'tide pools' },
        runId = 'graded-2',
      })
      h.eq(1, #seen, 'one executeStage request')
      h.eq('executeStage', seen[1].method, 'ctx.method')
      h.eq('grade', seen[1].params.handler, 'params.handler')
      h.eq('validateQuality', seen[1].params.stage, 'params.stage')
      h.eq('Notes on tide pools.', seen[1].params.context.output, 'context.output')
      h.eq(true, r.ok, 'runTask ok: ' .. vim.inspect(r.error))
      h.eq({ grade = 'B', chars = 20 }, r.context.data.validateQuality, 'the handler output')
      h.eq({}, r.context.flags, 'flags (the handler sent [])')
      local ids = h.logged_request_ids('executeStage', mark)
      h.eq(1, #ids, 'executeStage requests in the LSP log')
      h.ok(ids[1]:match('^%d+$'), 'the executeStage id is an integer, got ' .. ids[1])

      -- A handler name not declared fails the stage without a request.
      local r2 = s.call('runTask', {
        task = { name = 'undeclared', stages = { ingestion = { client = 'other' } } },
        runId = 'undeclared-1',
      })
      h.eq(false, r2.ok, 'an undeclared handler fails the task')
      h.eq('ClientStageError', r2.error and r2.error.name, 'error.name')
      h.eq('ingestion', r2.failedStage, 'failedStage')
      h.eq(1, #seen, 'no request for an undeclared handler')
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'client.stop(): shutdown after the request before it, exit, status 0',
    function()
      local ws = h.research_workspace()
      local s = h.lsp_session({ root_dir = ws })
      local answer
      s.client.request('runTask', { task = 'tasks/nap.task.yaml', runId = 'nap-2' }, function(err, result)
        answer = { err = err, result = result, exited = s.exit ~= nil }
      end)
      s.client.stop()
      local exit = s.wait_exit('the server to exit after client.stop()')
      h.eq({ code = 0, signal = 0 }, exit, 'on_exit')
      h.wait(function()
        return answer ~= nil
      end, 'the runTask answer')
      h.eq(nil, answer.err, 'runTask error')
      h.eq(true, answer.result.ok, 'runTask ok')
      h.eq('slept 1', answer.result.context.data.ingestion, 'the command ran to the end')
      h.ok(s.client.is_stopped(), 'client.is_stopped()')
      h.eq({}, s.errors, 'client errors')
    end,
  },
}
