-- The standard LSP features of the server, used the way a Neovim user's config uses them, with
-- nothing but Neovim's own client: vim.lsp.start_client{cmd, root_dir, handlers} (Neovim sends its
-- LSP capabilities, so the server announces hover, completion, …), a buffer opened with :edit and
-- attached with vim.lsp.buf_attach_client (Neovim sends didOpen, then didChange on each edit,
-- didClose on :bwipeout), the diagnostics read back with vim.diagnostic.get in the client's
-- namespace (vim.lsp.diagnostic.get_namespace), and hover and completion asked with
-- client.request_sync at the cursor (vim.lsp.util.make_position_params), their answers turned
-- into what Neovim shows by vim.lsp.util.convert_input_to_markdown_lines and
-- vim.lsp.util.text_document_completion_list_to_complete_items. Each test works on a fresh copy
-- of examples/daydream.
local h = require('conformance.helpers')

local CREATIVE = 'data/1_raw/templates/draft/creative-synthesis.txt'
local MEMBERSHIP = 'data/cohorts/demo/membership.csv'
-- Line 7 (1-based) of creative-synthesis.txt, and the same line with a typo'd filter.
local FILTER_LINE = 'Brainstorm {{ idea_count | default(3) }} ways these concepts could combine into a mechanism'
local TYPO_LINE = 'Brainstorm {{ concepts | nosuchfilter }} ways these concepts could combine into a mechanism'
local FILTER_ROW = 7

-- A session on a copy of examples/daydream whose publishDiagnostics handler records each
-- notification before handing it to Neovim's own (vim.lsp.diagnostic.on_publish_diagnostics).
local function editor_session()
  local ws = h.workspace('daydream')
  local published = {}
  local s = h.lsp_session({
    root_dir = ws,
    handlers = {
      ['textDocument/publishDiagnostics'] = function(err, result, ctx, config)
        table.insert(published, result)
        return vim.lsp.diagnostic.on_publish_diagnostics(err, result, ctx, config)
      end,
    },
  })
  s.ws = ws
  s.published = published
  -- The diagnostics Neovim holds for bufnr from this client.
  s.diagnostics = function(bufnr)
    return vim.diagnostic.get(bufnr, { namespace = vim.lsp.diagnostic.get_namespace(s.id) })
  end
  -- Waits for the diagnostics of bufnr's current version (the one its last didOpen or
  -- didChange carried), and returns what was published.
  s.wait_published = function(bufnr, what)
    local uri = vim.uri_from_bufnr(bufnr)
    local found
    h.wait(function()
      local version = vim.lsp.util.buf_versions[bufnr]
      for _, p in ipairs(published) do
        if p.uri == uri and p.version == version then
          found = p
        end
      end
      return found ~= nil or s.exit ~= nil
    end, what or 'publishDiagnostics')
    h.ok(found, 'the server exited before publishing diagnostics: ' .. vim.inspect(s.exit))
    return found
  end
  return s
end

-- :edit a file of the workspace and attach the client to its buffer (Neovim sends didOpen).
local function open(s, path)
  vim.cmd('edit ' .. vim.fn.fnameescape(s.ws .. '/' .. path))
  local bufnr = vim.api.nvim_get_current_buf()
  h.ok(vim.lsp.buf_attach_client(bufnr, s.id), 'buf_attach_client')
  return bufnr
end

local function close(bufnr)
  vim.cmd('bwipeout! ' .. bufnr)
end

-- The 1-based byte column of the `nth` `word` on `line` (plain find), 0-based for the cursor.
local function col_of(line, word, nth)
  local start = 0
  for _ = 1, nth or 1 do
    start = line:find(word, start + 1, true)
    assert(start, word .. ' not in ' .. line)
  end
  return start - 1
end

-- client.request_sync at the cursor; fails the test on an error answer or a timeout.
local function request_at(s, bufnr, method, extra)
  local params = vim.tbl_extend('force', vim.lsp.util.make_position_params(), extra or {})
  local answer, err = s.client.request_sync(method, params, h.TIMEOUT, bufnr)
  h.ok(answer, method .. ': ' .. tostring(err))
  h.eq(nil, answer.err, method .. ' error')
  return answer.result
end

local function completion_items(result)
  h.ok(type(result) == 'table', 'completion answer: ' .. vim.inspect(result))
  return result.items or result
end

local function labels(items)
  local found = vim.tbl_map(function(item)
    return item.label
  end, items)
  table.sort(found)
  return found
end

return {
  {
    'initialize: Neovim sends its LSP capabilities, the server announces its language features',
    function()
      local s = editor_session()
      local caps = s.client.server_capabilities
      h.eq(true, caps.hoverProvider, 'hoverProvider')
      h.eq({ openClose = true, change = 1, save = { includeText = true } }, caps.textDocumentSync, 'textDocumentSync')
      h.has(caps.completionProvider.triggerCharacters, '|', 'completionProvider.triggerCharacters')
      h.eq(true, caps.definitionProvider, 'definitionProvider')
      h.eq(true, caps.referencesProvider, 'referencesProvider')
      h.eq(true, caps.documentSymbolProvider, 'documentSymbolProvider')
      h.eq(false, caps.codeLensProvider.resolveProvider, 'codeLensProvider')
      h.has(caps.executeCommandProvider.commands, 'stagerunner.runGeneration', 'executeCommandProvider.commands')
      if vim.fn.has('nvim-0.8') == 0 then
        -- 0.7 resolves which LSP features it uses with this server
        local rc = s.client.resolved_capabilities
        h.eq(true, rc.text_document_open_close, 'resolved_capabilities.text_document_open_close')
        h.eq(vim.lsp.protocol.TextDocumentSyncKind.Full, rc.text_document_did_change, 'resolved_capabilities.text_document_did_change')
        h.eq(true, rc.text_document_save_include_text, 'resolved_capabilities.text_document_save_include_text')
        h.eq(true, rc.hover, 'resolved_capabilities.hover')
        h.eq(true, rc.completion, 'resolved_capabilities.completion')
        h.eq(true, rc.goto_definition, 'resolved_capabilities.goto_definition')
        h.eq(true, rc.find_references, 'resolved_capabilities.find_references')
        h.eq(true, rc.document_symbol, 'resolved_capabilities.document_symbol')
        h.eq(true, rc.code_lens, 'resolved_capabilities.code_lens')
        h.eq(true, rc.execute_command, 'resolved_capabilities.execute_command')
      end
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'a template opened with a typo\'d filter gets the diagnostic; fixing the line clears it; :bwipeout empties it',
    function()
      local s = editor_session()
      local path = s.ws .. '/' .. CREATIVE
      local lines = vim.fn.readfile(path)
      h.eq(FILTER_LINE, lines[FILTER_ROW], 'line 7 of the template')
      lines[FILTER_ROW] = TYPO_LINE
      vim.fn.writefile(lines, path)

      local bufnr = open(s, CREATIVE)
      local published = s.wait_published(bufnr, 'the diagnostics of the opened template')
      h.eq(1, #published.diagnostics, 'diagnostics published: ' .. vim.inspect(published.diagnostics))
      local diagnostics = s.diagnostics(bufnr)
      h.eq(1, #diagnostics, 'vim.diagnostic.get: ' .. vim.inspect(diagnostics))
      local d = diagnostics[1]
      local start = col_of(TYPO_LINE, 'nosuchfilter')
      h.eq({ FILTER_ROW - 1, start, FILTER_ROW - 1, start + #'nosuchfilter' }, { d.lnum, d.col, d.end_lnum, d.end_col }, 'the range covers nosuchfilter')
      h.eq('nosuchfilter', TYPO_LINE:sub(d.col + 1, d.end_col), 'the text under the diagnostic')
      h.eq(vim.diagnostic.severity.ERROR, d.severity, 'severity')
      h.eq('stagerunner', d.source, 'source')
      h.eq('template.unknown-filter', d.code, 'code')
      h.eq("no filter named 'nosuchfilter'", d.message, 'message')

      -- the fix, typed into the buffer: Neovim sends didChange, the new version has no problem
      vim.api.nvim_buf_set_lines(bufnr, FILTER_ROW - 1, FILTER_ROW, true, { FILTER_LINE })
      local fixed = s.wait_published(bufnr, 'the diagnostics of the fixed template')
      h.eq({}, fixed.diagnostics, 'diagnostics published after the fix')
      h.eq({}, s.diagnostics(bufnr), 'vim.diagnostic.get after the fix')

      -- closed: an empty list, without a version
      local count = #s.published
      close(bufnr)
      h.wait(function()
        return #s.published > count
      end, 'the diagnostics of the closed template')
      local closed = s.published[#s.published]
      h.eq(vim.uri_from_fname(path), closed.uri, 'uri of the last publishDiagnostics')
      h.eq({}, closed.diagnostics, 'diagnostics after didClose')
      h.eq(nil, closed.version, 'version after didClose')
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'a variable nothing provides gets a warning',
    function()
      local s = editor_session()
      local bufnr = open(s, CREATIVE)
      s.wait_published(bufnr, 'the diagnostics of the opened template')
      h.eq({}, s.diagnostics(bufnr), 'the template as written has no problem')
      vim.api.nvim_buf_set_lines(bufnr, 0, 1, true, { 'Write about {{ topic }}.' })
      s.wait_published(bufnr, 'the diagnostics of the edited template')
      local diagnostics = s.diagnostics(bufnr)
      h.eq(1, #diagnostics, 'vim.diagnostic.get: ' .. vim.inspect(diagnostics))
      local d = diagnostics[1]
      h.eq(vim.diagnostic.severity.WARN, d.severity, 'severity')
      h.eq('template.unprovided-variable', d.code, 'code')
      h.eq({ 0, 15, 0, 20 }, { d.lnum, d.col, d.end_lnum, d.end_col }, 'the range covers topic')
      h.ok(d.message:find("'topic' is not given by the values or combos of stagerunner.yaml", 1, true), 'message: ' .. d.message)
      close(bufnr)
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'hover on a template variable (client.request_sync textDocument/hover at the cursor)',
    function()
      local s = editor_session()
      local bufnr = open(s, CREATIVE)
      local line = vim.api.nvim_buf_get_lines(bufnr, 3, 4, true)[1]
      h.eq('{% for concept in concepts -%}', line, 'line 4 of the template')
      vim.api.nvim_win_set_cursor(0, { 4, col_of(line, 'concepts') + 3 })
      local result = request_at(s, bufnr, 'textDocument/hover')
      h.ok(type(result) == 'table' and type(result.contents) == 'table', 'hover: ' .. vim.inspect(result))
      h.eq('markdown', result.contents.kind, 'contents.kind')
      local value = result.contents.value
      local header = "**concepts** — from combo 'combo-loop' in stagerunner.yaml"
      h.eq(header, value:sub(1, #header), 'the hover starts with the variable and its source: ' .. value)
      h.ok(value:find('Example:', 1, true), 'an example value: ' .. value)
      -- what vim.lsp.buf.hover() would show in its float
      local shown = vim.lsp.util.trim_empty_lines(vim.lsp.util.convert_input_to_markdown_lines(result.contents))
      h.eq(header, shown[1], 'the first line Neovim shows')

      -- a gen_id cell of the membership
      local membership = open(s, MEMBERSHIP)
      local row = vim.api.nvim_buf_get_lines(membership, 1, 2, true)[1]
      h.eq('draft,d-creative,demo,,combo-loop,creative-synthesis,sonnet-4', row, 'row 2 of the membership')
      vim.api.nvim_win_set_cursor(0, { 2, col_of(row, 'd-creative') + 2 })
      local gen = request_at(s, membership, 'textDocument/hover').contents.value
      local gen_header = '**d-creative** — draft, template `creative-synthesis`, pending'
      h.eq(gen_header, gen:sub(1, #gen_header), 'the generation hover: ' .. gen)
      h.ok(gen:find('```\nYou are exploring how ideas combine.', 1, true), 'the rendered prompt: ' .. gen)
      close(membership)
      close(bufnr)
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'completion of a filter after `|`, and of the variables after `{{ `',
    function()
      local s = editor_session()
      local bufnr = open(s, CREATIVE)
      -- typing `wo` where the filter goes
      local typing = FILTER_LINE:gsub('default%(3%)', 'wo', 1)
      vim.api.nvim_buf_set_lines(bufnr, FILTER_ROW - 1, FILTER_ROW, true, { typing })
      vim.api.nvim_win_set_cursor(0, { FILTER_ROW, col_of(typing, '| wo') + #'| wo' })
      local items = completion_items(request_at(s, bufnr, 'textDocument/completion', {
        context = { triggerKind = 1 },
      }))
      local names = labels(items)
      h.has(names, 'wordwrap', 'filter completions')
      h.has(names, 'upper', 'filter completions')
      for _, item in ipairs(items) do
        h.eq(vim.lsp.protocol.CompletionItemKind.Function, item.kind, 'kind of ' .. item.label)
        h.eq('filter', item.detail, 'detail of ' .. item.label)
      end
      -- what the completion menu (vim.lsp.omnifunc) offers for the `wo` typed
      local menu = vim.lsp.util.text_document_completion_list_to_complete_items(items, 'wo')
      local words = vim.tbl_map(function(m)
        return m.word
      end, menu)
      h.has(words, 'wordwrap', 'the menu for "wo"')
      for _, m in ipairs(menu) do
        h.eq('wo', m.word:sub(1, 2), 'menu word ' .. m.word)
        h.eq('Function', m.kind, 'menu kind of ' .. m.word)
        h.eq('filter', m.menu, 'menu text of ' .. m.word)
      end

      -- after `{{ ` (the trigger character ' '): the variables a draft template can count on
      local line = vim.api.nvim_buf_get_lines(bufnr, 4, 5, true)[1]
      h.eq('{{ ', line:sub(1, 3), 'line 5 of the template')
      vim.api.nvim_win_set_cursor(0, { 5, 3 })
      local variables = completion_items(request_at(s, bufnr, 'textDocument/completion', {
        context = { triggerKind = 2, triggerCharacter = ' ' },
      }))
      h.eq({ 'concepts', 'idea_count' }, labels(variables), 'variable completions')
      for _, item in ipairs(variables) do
        h.eq(vim.lsp.protocol.CompletionItemKind.Variable, item.kind, 'kind of ' .. item.label)
      end
      close(bufnr)
      h.eq({}, s.errors, 'client errors')
    end,
  },
  {
    'a template with fileformat=dos (Neovim sends CRLF text): diagnostics, hover and completion past line 1',
    function()
        local s = editor_session()
        local path = s.ws .. '/' .. CREATIVE
        local lines = vim.fn.readfile(path)
        lines[FILTER_ROW] = TYPO_LINE
        local crlf = vim.tbl_map(function(l)
          return l .. '\r'
        end, lines)
        table.insert(crlf, '') -- binary mode: the last CR gets its LF too
        vim.fn.writefile(crlf, path, 'b')
        local bufnr = open(s, CREATIVE)
        h.eq('dos', vim.bo[bufnr].fileformat, 'fileformat')
        s.wait_published(bufnr, 'the diagnostics of the opened template')
        local diagnostics = s.diagnostics(bufnr)
        h.eq(1, #diagnostics, 'vim.diagnostic.get: ' .. vim.inspect(diagnostics))
        local start = col_of(TYPO_LINE, 'nosuchfilter')
        local d = diagnostics[1]
        h.eq({ FILTER_ROW - 1, start, FILTER_ROW - 1, start + #'nosuchfilter' }, { d.lnum, d.col, d.end_lnum, d.end_col }, 'range')
        vim.api.nvim_win_set_cursor(0, { 4, col_of(lines[4], 'concepts') + 3 })
        local hover = request_at(s, bufnr, 'textDocument/hover')
        h.ok(type(hover) == 'table' and hover.contents.value:find('**concepts**', 1, true), 'hover: ' .. vim.inspect(hover))
        vim.api.nvim_win_set_cursor(0, { FILTER_ROW, col_of(TYPO_LINE, 'nosuchfilter') })
        h.has(labels(completion_items(request_at(s, bufnr, 'textDocument/completion'))), 'wordwrap', 'filter completions')
        close(bufnr)
    end,
  },
}
