"""The standard LSP 3.17 language features of `stagerunner serve`, driven by pygls 2's typed
`LanguageClient` (lsprotocol types) the way an editor integration written with pygls drives them.

The server announces them in `initialize`'s `capabilities` when the client sends LSP capabilities
(any of `textDocument`, `workspace`, `general`, `window`). A client then opens, changes, saves and
closes documents (`text_document_did_open`, …), receives `textDocument/publishDiagnostics` through
`@client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)`, asks `text_document_hover_async`,
`text_document_completion_async`, `text_document_definition_async`, `text_document_references_async`,
`text_document_document_symbol_async`, `text_document_code_lens_async`, and runs the lenses'
commands with `workspace_execute_command_async`. The server may answer `window/showDocument`,
which the client serves with `@client.feature(types.WINDOW_SHOW_DOCUMENT)`.

Every test works on a fresh copy of an example (conftest.py's fixtures), never on examples/.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from clientlib_support import ANSWER_TIMEOUT, EXIT_TIMEOUT, RUN_STAGE_PARAMS, check_draft, plain
from pygls_support import RecordingLanguageServerProtocol, run, serving

#: How long a test waits for a publishDiagnostics (the server debounces ~150 ms): an upper bound
#: for a loaded machine, not a performance budget.
DIAGNOSTICS_TIMEOUT = 30.0

CREATIVE = "data/1_raw/templates/draft/creative-synthesis.txt"
SYSTEMATIC = "data/1_raw/templates/draft/systematic-analytical.txt"
MEMBERSHIP = "data/cohorts/demo/membership.csv"
DRAFT_CATALOG = "data/1_raw/draft_templates.csv"
SUMMARY_TASK = "tasks/summary.task.yaml"
RESEARCH_PIPELINE = "pipelines/research.pipeline.yaml"

#: The line of creative-synthesis.txt that uses a filter, and the same line with a typo'd one.
FILTER_LINE = "Brainstorm {{ idea_count | default(3) }} ways these concepts could combine into a mechanism"
TYPO_LINE = "Brainstorm {{ concepts | nosuchfilter }} ways these concepts could combine into a mechanism"

#: The lenses of membership.csv: its ten rows, in order.
GEN_IDS = [
    "d-creative",
    "d-analytic",
    "e-creative-llm",
    "e-creative-copy",
    "e-analytic-llm",
    "v-creative-llm-novelty",
    "v-creative-llm-rigor",
    "v-creative-copy-novelty",
    "v-analytic-llm-novelty",
    "v-analytic-llm-rigor",
]


class EditorClient(LanguageClient):
    """A LanguageClient as an editor integration writes it: it keeps the diagnostics the server
    publishes, and opens the documents the server asks it to show."""

    def __init__(self) -> None:
        super().__init__("stagerunner-tests", version("pygls"), protocol_cls=RecordingLanguageServerProtocol)
        self.returncode: int | None = None
        self.published: list[types.PublishDiagnosticsParams] = []
        self.published_event = asyncio.Event()
        self.shown: list[types.ShowDocumentParams] = []
        self.shown_event = asyncio.Event()

        @self.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def publish_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            self.published.append(params)
            self.published_event.set()

        @self.feature(types.WINDOW_SHOW_DOCUMENT)
        def show_document(params: types.ShowDocumentParams) -> types.ShowDocumentResult:
            self.shown.append(params)
            self.shown_event.set()
            return types.ShowDocumentResult(success=True)

    async def server_exit(self, server: asyncio.subprocess.Process) -> None:
        self.returncode = server.returncode

    def published_for(self, uri: str) -> list[types.PublishDiagnosticsParams]:
        return [p for p in self.published if p.uri == uri]

    async def diagnostics(
        self, uri: str, matching: Callable[[types.PublishDiagnosticsParams], bool]
    ) -> types.PublishDiagnosticsParams:
        """Waits for a publishDiagnostics of `uri` that `matching` accepts (already received or next)."""

        async def arrival() -> types.PublishDiagnosticsParams:
            while True:
                found = [p for p in self.published_for(uri) if matching(p)]
                if found:
                    return found[-1]
                self.published_event.clear()
                await self.published_event.wait()

        try:
            return await asyncio.wait_for(arrival(), DIAGNOSTICS_TIMEOUT)
        except TimeoutError:
            raise AssertionError(
                f"no matching publishDiagnostics for {uri} within {DIAGNOSTICS_TIMEOUT} s; got {self.published_for(uri)}"
            ) from None

    async def diagnostics_at(self, uri: str, version: int) -> list[types.Diagnostic]:
        """The diagnostics published for `uri` at document version `version`."""
        return list((await self.diagnostics(uri, lambda p: p.version == version)).diagnostics)


def lsp_capabilities(*, show_document: bool = False) -> types.ClientCapabilities:
    """The client capabilities of a small editor: documents synced, the language features asked."""
    return types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(
            synchronization=types.TextDocumentSyncClientCapabilities(did_save=True),
            publish_diagnostics=types.PublishDiagnosticsClientCapabilities(version_support=True),
            hover=types.HoverClientCapabilities(content_format=[types.MarkupKind.Markdown, types.MarkupKind.PlainText]),
            completion=types.CompletionClientCapabilities(),
            definition=types.DefinitionClientCapabilities(link_support=False),
            references=types.ReferenceClientCapabilities(),
            document_symbol=types.DocumentSymbolClientCapabilities(hierarchical_document_symbol_support=True),
            code_lens=types.CodeLensClientCapabilities(),
        ),
        workspace=types.WorkspaceClientCapabilities(
            execute_command=types.ExecuteCommandClientCapabilities(),
        ),
        window=types.WindowClientCapabilities(
            show_document=types.ShowDocumentClientCapabilities(support=show_document),
        ),
        general=types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf16]),
    )


async def initialize(
    client: LanguageClient, workspace: Path, capabilities: types.ClientCapabilities | None = None
) -> types.InitializeResult:
    params = types.InitializeParams(
        capabilities=lsp_capabilities() if capabilities is None else capabilities,
        process_id=os.getpid(),
        client_info=types.ClientInfo(name="pygls LanguageClient", version=version("pygls")),
        root_uri=workspace.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)],
    )
    result = await asyncio.wait_for(client.initialize_async(params), ANSWER_TIMEOUT)
    client.initialized(types.InitializedParams())
    return result


async def shutdown_and_exit(client: EditorClient) -> None:
    assert await asyncio.wait_for(client.shutdown_async(None), ANSWER_TIMEOUT) is None
    client.exit(None)
    await asyncio.wait_for(client.stop(), EXIT_TIMEOUT)
    assert client.returncode == 0
    assert client.protocol.unsolicited_responses() == []


async def answer(awaitable: Any) -> Any:
    return await asyncio.wait_for(awaitable, ANSWER_TIMEOUT)


def document(path: Path) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=path.as_uri())


def at(line: int, character: int) -> types.Position:
    return types.Position(line=line, character=character)


def span(start_line: int, start: int, end_line: int, end: int) -> types.Range:
    return types.Range(start=at(start_line, start), end=at(end_line, end))


def open_document(client: LanguageClient, path: Path, text: str, version: int = 1, language: str = "plaintext") -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=path.as_uri(), language_id=language, version=version, text=text)
        )
    )


def change_document(client: LanguageClient, path: Path, text: str, version: int) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=path.as_uri(), version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


def character_of(line: str, word: str, occurrence: int = 1) -> int:
    """The UTF-16 column where the `occurrence`-th `word` starts on `line` (ASCII lines here)."""
    index = -1
    for _ in range(occurrence):
        index = line.index(word, index + 1)
    return index


def items_of(completion: types.CompletionList | list[types.CompletionItem] | None) -> list[types.CompletionItem]:
    assert completion is not None, "no completion answer"
    return list(completion.items if isinstance(completion, types.CompletionList) else completion)


def line_start(path: Path, line: int) -> types.Location:
    """A location at the start of line `line` (0-based) of `path`, as definition and references give it."""
    return types.Location(uri=path.as_uri(), range=span(line, 0, line, 0))


def single_location(found: Any) -> types.Location:
    """The one Location a definition answered (a Location, or a list of one)."""
    if isinstance(found, (list, tuple)):
        assert len(found) == 1, found
        found = found[0]
    assert isinstance(found, types.Location), found
    return found


# --- initialize ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "capabilities",
    [
        types.ClientCapabilities(text_document=types.TextDocumentClientCapabilities()),
        types.ClientCapabilities(workspace=types.WorkspaceClientCapabilities()),
        types.ClientCapabilities(general=types.GeneralClientCapabilities()),
        types.ClientCapabilities(window=types.WindowClientCapabilities()),
        lsp_capabilities(),
    ],
    ids=["textDocument", "workspace", "general", "window", "editor"],
)
def test_language_capabilities_announced(
    capabilities: types.ClientCapabilities, bin_path: str, daydream: Path, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with serving(EditorClient(), bin_path, tmp_path) as client:
            caps = (await initialize(client, daydream, capabilities)).capabilities
            assert caps.position_encoding == types.PositionEncodingKind.Utf16
            assert caps.text_document_sync == types.TextDocumentSyncOptions(
                open_close=True,
                change=types.TextDocumentSyncKind.Full,
                save=types.SaveOptions(include_text=True),
            )
            assert caps.hover_provider is True
            assert caps.completion_provider is not None
            assert "|" in caps.completion_provider.trigger_characters
            assert caps.definition_provider is True
            assert caps.references_provider is True
            assert caps.document_symbol_provider is True
            assert caps.code_lens_provider == types.CodeLensOptions(resolve_provider=False)
            assert caps.execute_command_provider is not None
            assert sorted(caps.execute_command_provider.commands) == [
                "stagerunner.render",
                "stagerunner.runGeneration",
                "stagerunner.runTask",
            ]
            # StageRunner's own capabilities are still where typed clients keep them
            assert caps.experimental["stagerunner"]["framing"] == "lsp"
            await shutdown_and_exit(client)

    run(scenario())


def test_no_language_capabilities_without_lsp_client_capabilities(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(EditorClient(), bin_path, tmp_path) as client:
            caps = (await initialize(client, daydream, types.ClientCapabilities())).capabilities
            assert caps.text_document_sync is None
            assert caps.hover_provider is None
            assert caps.completion_provider is None
            assert caps.definition_provider is None
            assert caps.references_provider is None
            assert caps.document_symbol_provider is None
            assert caps.code_lens_provider is None
            assert caps.execute_command_provider is None
            assert caps.experimental["stagerunner"]["framing"] == "lsp"
            await shutdown_and_exit(client)

    run(scenario())


# --- diagnostics --------------------------------------------------------------------------------


def test_typo_filter_diagnostic_then_fixed(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        template = daydream / CREATIVE
        saved = template.read_text(encoding="utf-8")
        assert FILTER_LINE in saved
        typo = saved.replace(FILTER_LINE, TYPO_LINE)
        line = typo.split("\n").index(TYPO_LINE)
        async with serving(client, bin_path, tmp_path):
            await initialize(client, daydream)
            open_document(client, template, typo, version=1, language="jinja")
            [diagnostic] = await client.diagnostics_at(template.as_uri(), 1)
            start = character_of(TYPO_LINE, "nosuchfilter")
            assert diagnostic.range == span(line, start, line, start + len("nosuchfilter"))
            assert diagnostic.severity == types.DiagnosticSeverity.Error
            assert diagnostic.code == "template.unknown-filter"
            assert diagnostic.source == "stagerunner"
            assert diagnostic.message == "no filter named 'nosuchfilter'"

            # the fix, typed in the editor: the diagnostics of version 2 are none
            change_document(client, template, saved, version=2)
            assert await client.diagnostics_at(template.as_uri(), 2) == []

            # two edits in a row: the newer one's check wins, and nothing older is published after it
            change_document(client, template, typo, version=3)
            change_document(client, template, saved, version=4)
            assert await client.diagnostics_at(template.as_uri(), 4) == []
            await answer(client.protocol.send_request_async("ping", {}))  # everything sent before it is read
            versions = [p.version for p in client.published_for(template.as_uri())]
            assert versions == sorted(versions), f"diagnostics went back to an older version: {versions}"
            assert versions[-1] == 4

            # closed: its problems are no longer shown
            client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=document(template)))
            closed = await client.diagnostics(template.as_uri(), lambda p: p.version is None)
            assert list(closed.diagnostics) == []
            await shutdown_and_exit(client)

    run(scenario())


def test_unprovided_variable_warning_and_syntax_error(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        template = daydream / CREATIVE
        async with serving(client, bin_path, tmp_path):
            await initialize(client, daydream)
            text = "Write about {{ topic }}.\n"
            open_document(client, template, text, version=1)
            [warning] = await client.diagnostics_at(template.as_uri(), 1)
            assert warning.code == "template.unprovided-variable"
            assert warning.severity == types.DiagnosticSeverity.Warning
            assert warning.source == "stagerunner"
            assert warning.message == (
                "'topic' is not given by the values or combos of stagerunner.yaml: "
                "a generation fails on it unless its request gives it in values"
            )
            start = character_of(text, "topic")
            assert warning.range == span(0, start, 0, start + len("topic"))

            change_document(client, template, "Concepts:\n{% if %}yes{% endif %}\n", version=2)
            [error] = await client.diagnostics_at(template.as_uri(), 2)
            assert error.code == "template.syntax"
            assert error.severity == types.DiagnosticSeverity.Error
            assert error.range.start.line == 1
            await shutdown_and_exit(client)

    run(scenario())


def test_membership_unknown_template_diagnostic(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        membership = daydream / MEMBERSHIP
        async with serving(client, bin_path, tmp_path):
            await initialize(client, daydream)
            text = membership.read_text(encoding="utf-8").replace(",creative-synthesis,", ",creative-synthesys,", 1)
            open_document(client, membership, text, version=1, language="csv")
            [diagnostic] = await client.diagnostics_at(membership.as_uri(), 1)
            assert diagnostic.code == "membership.unknown-template"
            assert diagnostic.severity == types.DiagnosticSeverity.Error
            assert diagnostic.range.start.line == 1
            assert "creative-synthesys" in diagnostic.message
            change_document(client, membership, membership.read_text(encoding="utf-8"), version=2)
            assert await client.diagnostics_at(membership.as_uri(), 2) == []
            await shutdown_and_exit(client)

    run(scenario())


# --- hover --------------------------------------------------------------------------------------


def test_hover_template_variable(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        template = daydream / CREATIVE
        text = template.read_text(encoding="utf-8")
        line = text.split("\n")[3]
        assert line == "{% for concept in concepts -%}"
        async with serving(client, bin_path, tmp_path):
            await initialize(client, daydream)
            open_document(client, template, text, version=1, language="jinja")
            hover = await answer(
                client.text_document_hover_async(
                    types.HoverParams(
                        text_document=document(template), position=at(3, character_of(line, "concepts") + 2)
                    )
                )
            )
            assert isinstance(hover, types.Hover)
            assert isinstance(hover.contents, types.MarkupContent)
            assert hover.contents.kind == types.MarkupKind.Markdown
            value = hover.contents.value
            assert value.startswith("**concepts** — from combo 'combo-loop' in stagerunner.yaml"), value
            assert "Example:" in value
            assert "Default mode network" in value
            await shutdown_and_exit(client)

    run(scenario())


def test_hover_membership_cells(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        membership = daydream / MEMBERSHIP
        row = membership.read_text(encoding="utf-8").split("\n")[1]
        assert row == "draft,d-creative,demo,,combo-loop,creative-synthesis,sonnet-4"

        async def hover(character: int) -> str:
            found = await answer(
                client.text_document_hover_async(
                    types.HoverParams(text_document=document(membership), position=at(1, character))
                )
            )
            assert isinstance(found, types.Hover) and isinstance(found.contents, types.MarkupContent)
            assert found.contents.kind == types.MarkupKind.Markdown
            return found.contents.value

        async with serving(client, bin_path, tmp_path):
            await initialize(client, daydream)
            gen = await hover(character_of(row, "d-creative") + 3)
            assert gen.startswith("**d-creative** — draft, template `creative-synthesis`, pending"), gen
            # the prompt it would send, rendered, in a code block
            assert "```\nYou are exploring how ideas combine." in gen
            assert "1. Default mode network:" in gen

            template = await hover(character_of(row, "creative-synthesis") + 1)
            assert template.startswith("**Creative Synthesis** (`creative-synthesis`, draft, llm)"), template
            assert "Brainstorm connections between the concepts" in template
            assert f"file: `{CREATIVE}`" in template
            await shutdown_and_exit(client)

    run(scenario())


# --- completion ---------------------------------------------------------------------------------


def test_completion_of_filters_and_variables(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        template = daydream / CREATIVE
        saved = template.read_text(encoding="utf-8")
        lines = saved.split("\n")
        async with serving(client, bin_path, tmp_path):
            await initialize(client, daydream)
            open_document(client, template, saved, version=1, language="jinja")

            async def complete(line: int, character: int, trigger: str | None = None) -> list[types.CompletionItem]:
                context = types.CompletionContext(
                    trigger_kind=types.CompletionTriggerKind.TriggerCharacter
                    if trigger
                    else types.CompletionTriggerKind.Invoked,
                    trigger_character=trigger,
                )
                return items_of(
                    await answer(
                        client.text_document_completion_async(
                            types.CompletionParams(
                                text_document=document(template), position=at(line, character), context=context
                            )
                        )
                    )
                )

            # after `{{ idea_count | `: the filters
            line = lines.index(FILTER_LINE)
            filters = await complete(line, character_of(FILTER_LINE, "default"), trigger=" ")
            labels = [item.label for item in filters]
            assert {"upper", "wordwrap", "default", "join"} <= set(labels), labels
            assert all(item.kind == types.CompletionItemKind.Function for item in filters)
            assert all(item.detail == "filter" for item in filters)

            # typing a filter's first letters (the editor filters the list by them)
            typing = FILTER_LINE.replace("default(3)", "wo")
            change_document(client, template, saved.replace(FILTER_LINE, typing), version=2)
            typed = await complete(line, character_of(typing, "wo") + 2)
            assert "wordwrap" in [item.label for item in typed]

            # after `{{ `: the variables a draft template can count on
            change_document(client, template, saved, version=3)
            assert lines[4].startswith("{{ loop.index }}")
            variables = await complete(4, 3, trigger=" ")
            assert [(item.label, item.kind, item.detail) for item in variables] == [
                ("concepts", types.CompletionItemKind.Variable, "combo 'combo-loop' in stagerunner.yaml"),
                ("idea_count", types.CompletionItemKind.Variable, "the values of stagerunner.yaml"),
            ]
            await shutdown_and_exit(client)

    run(scenario())


def test_completion_of_membership_template_ids(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        membership = daydream / MEMBERSHIP
        rows = membership.read_text(encoding="utf-8").split("\n")
        async with serving(client, bin_path, tmp_path):
            await initialize(client, daydream)

            async def complete(line: int) -> list[str]:
                character = character_of(rows[line], ",", 5) + 1  # the template_id column
                items = items_of(
                    await answer(
                        client.text_document_completion_async(
                            types.CompletionParams(text_document=document(membership), position=at(line, character))
                        )
                    )
                )
                return sorted(item.label for item in items)

            assert await complete(1) == ["creative-synthesis", "systematic-analytical"]  # a draft row
            assert await complete(3) == ["parsed-from-draft", "synthesis-plain"]  # an essay row
            assert await complete(6) == ["novelty", "scientific-rigor"]  # an evaluation row
            await shutdown_and_exit(client)

    run(scenario())


# --- definition and references ------------------------------------------------------------------


def test_definition_from_membership(bin_path: str, spaced_daydream: Path, tmp_path: Path) -> None:
    """In a folder whose URIs need percent-encoding: the answers are the URIs the client uses."""

    async def scenario() -> None:
        client = EditorClient()
        membership = spaced_daydream / MEMBERSHIP
        rows = membership.read_text(encoding="utf-8").split("\n")
        async with serving(client, bin_path, tmp_path):
            await initialize(client, spaced_daydream)

            async def definition(line: int, character: int) -> types.Location:
                return single_location(
                    await answer(
                        client.text_document_definition_async(
                            types.DefinitionParams(text_document=document(membership), position=at(line, character))
                        )
                    )
                )

            # template_id → the template file
            found = await definition(1, character_of(rows[1], "creative-synthesis") + 4)
            assert found == line_start(spaced_daydream / CREATIVE, 0)
            # parent_gen_id → the parent's row
            assert rows[3].startswith("essay,e-creative-llm,demo,d-creative,")
            found = await definition(3, character_of(rows[3], "d-creative") + 2)
            assert found == line_start(membership, 1)
            await shutdown_and_exit(client)

    run(scenario())


def test_references_of_a_template(bin_path: str, spaced_daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        async with serving(client, bin_path, tmp_path):
            await initialize(client, spaced_daydream)

            async def references(path: str) -> list[types.Location]:
                template = spaced_daydream / path
                open_document(client, template, template.read_text(encoding="utf-8"), language="jinja")
                found = await answer(
                    client.text_document_references_async(
                        types.ReferenceParams(
                            text_document=document(template),
                            position=at(0, 0),
                            context=types.ReferenceContext(include_declaration=True),
                        )
                    )
                )
                return list(found)

            # its catalog row, then every membership row using it
            assert await references(CREATIVE) == [
                line_start(spaced_daydream / DRAFT_CATALOG, 1),
                line_start(spaced_daydream / MEMBERSHIP, 1),
            ]
            assert await references(SYSTEMATIC) == [
                line_start(spaced_daydream / DRAFT_CATALOG, 2),
                line_start(spaced_daydream / MEMBERSHIP, 2),
            ]
            assert await references("data/1_raw/templates/evaluation/novelty.txt") == [
                line_start(spaced_daydream / "data/1_raw/evaluation_templates.csv", 1),
                line_start(spaced_daydream / MEMBERSHIP, 6),
                line_start(spaced_daydream / MEMBERSHIP, 8),
                line_start(spaced_daydream / MEMBERSHIP, 9),
            ]
            await shutdown_and_exit(client)

    run(scenario())


def test_definition_in_a_task_file(bin_path: str, research: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        task = research / SUMMARY_TASK
        lines = task.read_text(encoding="utf-8").split("\n")
        async with serving(client, bin_path, tmp_path):
            await initialize(client, research)

            async def definition(text: str) -> types.Location:
                line = next(i for i, line in enumerate(lines) if text in line)
                character = character_of(lines[line], text) + len(text) // 2
                return single_location(
                    await answer(
                        client.text_document_definition_async(
                            types.DefinitionParams(text_document=document(task), position=at(line, character))
                        )
                    )
                )

            # relative to the task file's folder
            assert await definition("prompts/draft.j2") == line_start(research / "tasks/prompts/draft.j2", 0)
            assert await definition("schemas/summary.schema.json") == line_start(
                research / "tasks/schemas/summary.schema.json", 0
            )
            assert await definition("prompts/critique.j2") == line_start(research / "tasks/prompts/critique.j2", 0)
            await shutdown_and_exit(client)

    run(scenario())


def test_definition_in_a_pipeline_file(bin_path: str, research: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        pipeline = research / RESEARCH_PIPELINE
        lines = pipeline.read_text(encoding="utf-8").split("\n")
        async with serving(client, bin_path, tmp_path):
            await initialize(client, research)
            try:
                for name in ("summary", "review"):
                    text = f"../tasks/{name}.task.yaml"
                    line = next(i for i, line in enumerate(lines) if text in line)
                    found = single_location(
                        await answer(
                            client.text_document_definition_async(
                                types.DefinitionParams(
                                    text_document=document(pipeline),
                                    position=at(line, character_of(lines[line], text) + 5),
                                )
                            )
                        )
                    )
                    assert found == line_start(research / f"tasks/{name}.task.yaml", 0)
            finally:
                await shutdown_and_exit(client)

    run(scenario())


# --- outline and code lenses --------------------------------------------------------------------


def test_document_symbols_of_task_and_pipeline(bin_path: str, research: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        task = research / SUMMARY_TASK
        pipeline = research / RESEARCH_PIPELINE
        task_lines = task.read_text(encoding="utf-8").split("\n")
        pipeline_lines = pipeline.read_text(encoding="utf-8").split("\n")
        async with serving(client, bin_path, tmp_path):
            await initialize(client, research)

            async def symbols(path: Path) -> list[types.DocumentSymbol]:
                found = await answer(
                    client.text_document_document_symbol_async(types.DocumentSymbolParams(text_document=document(path)))
                )
                assert all(isinstance(symbol, types.DocumentSymbol) for symbol in found), found
                return list(found)

            # one per stage (Method), its handler as the detail, where it is written
            stages = [
                ("ingestion", "command"),
                ("promptTemplating", "template"),
                ("inference", "llm"),
                ("parsing", "parse"),
                ("validateStructure", "schema"),
                ("critique", "prompt"),
                ("refine", "prompt"),
                ("integration", "write"),
            ]
            found = await symbols(task)
            assert [(s.name, s.kind, s.detail) for s in found] == [
                (name, types.SymbolKind.Method, handler) for name, handler in stages
            ]
            for symbol in found:
                line = task_lines.index(f"  {symbol.name}:")
                assert symbol.range.start.line == symbol.range.end.line == line, symbol
                assert symbol.selection_range.start.line == line

            # one per task (Module), its task file as the detail
            found = await symbols(pipeline)
            assert [(s.name, s.kind, s.detail) for s in found] == [
                ("summary", types.SymbolKind.Module, "../tasks/summary.task.yaml"),
                ("review", types.SymbolKind.Module, "../tasks/review.task.yaml"),
            ]
            for symbol in found:
                assert symbol.detail in pipeline_lines[symbol.range.start.line], symbol
            await shutdown_and_exit(client)

    run(scenario())


def test_code_lenses(bin_path: str, daydream: Path, research: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        membership = daydream / MEMBERSHIP
        async with serving(client, bin_path, tmp_path):
            await initialize(client, daydream)
            lenses = await answer(
                client.text_document_code_lens_async(types.CodeLensParams(text_document=document(membership)))
            )
            expected = []
            for line, gen_id in enumerate(GEN_IDS, start=1):
                expected += [
                    types.CodeLens(
                        range=span(line, 0, line, 0),
                        command=types.Command(
                            title=f"▶ run {gen_id}", command="stagerunner.runGeneration", arguments=[gen_id]
                        ),
                    ),
                    types.CodeLens(
                        range=span(line, 0, line, 0),
                        command=types.Command(title="render", command="stagerunner.render", arguments=[gen_id]),
                    ),
                ]
            assert [plain_lens(lens) for lens in lenses] == [plain_lens(lens) for lens in expected]
            await shutdown_and_exit(client)

        client = EditorClient()
        async with serving(client, bin_path, tmp_path):
            await initialize(client, research)
            lenses = await answer(
                client.text_document_code_lens_async(
                    types.CodeLensParams(text_document=document(research / SUMMARY_TASK))
                )
            )
            assert [plain_lens(lens) for lens in lenses] == [
                (0, "▶ run this task", "stagerunner.runTask", [SUMMARY_TASK]),
            ]
            await shutdown_and_exit(client)

    run(scenario())


def plain_lens(lens: types.CodeLens) -> tuple[Any, ...]:
    assert lens.command is not None, lens
    assert lens.range.start == lens.range.end, lens
    return (lens.range.start.line, lens.command.title, lens.command.command, list(lens.command.arguments or []))


# --- commands -----------------------------------------------------------------------------------


def test_execute_run_generation_shows_the_raw_answer(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        membership = daydream / MEMBERSHIP
        async with serving(client, bin_path, tmp_path):
            await initialize(client, daydream, lsp_capabilities(show_document=True))
            lenses = await answer(
                client.text_document_code_lens_async(types.CodeLensParams(text_document=document(membership)))
            )
            run_lens = next(lens for lens in lenses if list(lens.command.arguments) == ["d-creative"])
            assert run_lens.command.command == "stagerunner.runGeneration"

            # the lens' command, as the editor runs it when clicked
            result = await answer(
                client.workspace_execute_command_async(
                    types.ExecuteCommandParams(
                        command=run_lens.command.command, arguments=list(run_lens.command.arguments)
                    )
                )
            )
            check_draft(plain(result), daydream, reused=False)
            gen = daydream / "data" / "gens" / "draft" / "d-creative"
            assert sorted(p.name for p in gen.iterdir()) == ["metadata.json", "parsed.txt", "prompt.txt", "raw.txt"]

            # the client said it can show documents: the server asks it to show the raw answer
            await asyncio.wait_for(client.shown_event.wait(), ANSWER_TIMEOUT)
            assert client.shown == [types.ShowDocumentParams(uri=(gen / "raw.txt").as_uri(), take_focus=False)]
            assert len(client.protocol.server_requests(types.WINDOW_SHOW_DOCUMENT)) == 1

            # the hover of the row now tells how it went
            row = membership.read_text(encoding="utf-8").split("\n")[1]
            hover = await answer(
                client.text_document_hover_async(
                    types.HoverParams(text_document=document(membership), position=at(1, character_of(row, "d-creative")))
                )
            )
            assert hover.contents.value.startswith("**d-creative** — draft, template `creative-synthesis`, success")
            await shutdown_and_exit(client)

    run(scenario())


def test_execute_render(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EditorClient()
        async with serving(client, bin_path, tmp_path):
            await initialize(client, daydream)
            rendered = plain(
                await answer(
                    client.workspace_execute_command_async(
                        types.ExecuteCommandParams(command="stagerunner.render", arguments=["d-creative"])
                    )
                )
            )
            assert rendered == plain(await answer(client.protocol.send_request_async("renderPrompt", RUN_STAGE_PARAMS)))
            assert rendered["prompt"].startswith("You are exploring how ideas combine.")
            assert not (daydream / "data" / "gens").exists(), "render must not write a generation"
            await shutdown_and_exit(client)

    run(scenario())


# --- CRLF documents -----------------------------------------------------------------------------


def test_crlf_documents(bin_path: str, daydream: Path, tmp_path: Path) -> None:
    """LSP counts \\r\\n as one line break: an editor on Windows, or a CSV from a spreadsheet."""

    async def scenario() -> None:
        client = EditorClient()
        membership = daydream / MEMBERSHIP
        membership.write_bytes(membership.read_bytes().replace(b"\n", b"\r\n"))
        template = daydream / CREATIVE
        async with serving(client, bin_path, tmp_path):
            await initialize(client, daydream)
            try:
                lenses = await answer(
                    client.text_document_code_lens_async(types.CodeLensParams(text_document=document(membership)))
                )
                assert len(lenses) == 2 * len(GEN_IDS)

                text = "Concepts:\r\n{{ concepts | nosuchfilter }}\r\n"
                open_document(client, template, text, version=1)
                [diagnostic] = await client.diagnostics_at(template.as_uri(), 1)
                assert diagnostic.range == span(1, 14, 1, 26)
                hover = await answer(
                    client.text_document_hover_async(
                        types.HoverParams(text_document=document(template), position=at(1, 5))
                    )
                )
                assert hover is not None and hover.contents.value.startswith("**concepts**")
            finally:
                await shutdown_and_exit(client)

    run(scenario())
