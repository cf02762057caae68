"""Every method and notification of protocol/openrpc.json is exercised by a test against the server.

``COVERAGE`` names, for each method (the test-only ones aside), the tests that exercise it against
the real binary. This file fails when a method has no entry (a new one in openrpc.json), when an
entry names a test that does not exist or does not use the server, when the test's code never
mentions the method (its name in quotes, as ``c.sent["exit"]`` does, or the client's method for
it, as ``c.run_stage(`` does), and when the README's coverage list says something else.
Wire-level assertions (``c.sent``/``c.received``, counted by ``ValidatingClient``) back the
methods the client sends or receives by itself.
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path

import pytest

from stagerunner_testkit import HERE, REPO_ROOT

README = HERE.parent / "README.md"

COVERAGE: dict[str, tuple[str, ...]] = {
    "initialize": ("test_methods.py::test_initialize_handshake",),
    "initialized": ("test_methods.py::test_initialize_handshake",),
    "shutdown": ("test_methods.py::test_workspace_methods",),
    "exit": ("test_lifecycle.py::test_close_is_clean_and_reaps",),
    "ping": ("test_methods.py::test_ping",),
    "$/cancelRequest": (
        "test_lifecycle.py::test_timeout_sends_cancel",
        "test_tasks.py::test_a_slow_handler_is_cancelled_when_its_stage_times_out",
    ),
    "$/progress": ("test_progress.py::test_progress_run_yields_begin_the_whole_text_and_end",),
    "runStage": ("test_methods.py::test_workspace_methods",),
    "renderPrompt": ("test_methods.py::test_workspace_methods",),
    "listTemplates": ("test_methods.py::test_workspace_methods",),
    "validateWorkspace": ("test_methods.py::test_workspace_methods",),
    "runTask": ("test_tasks.py::test_research_example_runs_through_run_task",),
    "executeStage": ("test_tasks.py::test_a_client_stage_is_served_by_a_python_handler",),
    "runPipeline": ("test_jobs.py::test_research_pipeline_end_to_end",),
    "getStatus": ("test_jobs.py::test_research_pipeline_end_to_end",),
    "listJobs": ("test_jobs.py::test_research_pipeline_end_to_end",),
    "cancelJob": ("test_jobs.py::test_cancel_mid_stage_then_resume",),
    "retryTask": ("test_jobs.py::test_retry_after_a_failure",),
    "resumeJob": ("test_jobs.py::test_cancel_mid_stage_then_resume",),
    "getArtifact": ("test_jobs.py::test_research_pipeline_end_to_end",),
    "subscribeStatus": ("test_jobs.py::test_research_pipeline_end_to_end",),
    "unsubscribeStatus": ("test_jobs.py::test_research_pipeline_end_to_end",),
    "statusChanged": ("test_jobs.py::test_research_pipeline_end_to_end",),
}

# Fixtures that run the real binary (they are skipped without it).
SERVER_FIXTURES = {"spawn", "sync_spawn", "bin_path"}


def protocol_methods() -> list[str]:
    document = json.loads((REPO_ROOT / "protocol" / "openrpc.json").read_text(encoding="utf-8"))
    return [m["name"] for m in document["methods"] if not m.get("x-testOnly")]


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


@cache
def functions_of(file: str) -> dict[str, tuple[ast.AsyncFunctionDef | ast.FunctionDef, str]]:
    source = (HERE / file).read_text(encoding="utf-8")
    tree = ast.parse(source)
    return {
        node.name: (node, ast.get_source_segment(source, node) or "")
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
    }


def mentions(code: str, method: str) -> bool:
    """The method's name in quotes, or the client's method for it (``.run_stage``), in ``code``."""
    quoted = re.search(r"""["']""" + re.escape(method) + r"""["']""", code)
    called = not method.startswith("$/") and re.search(r"\." + re.escape(snake(method)) + r"\b", code)
    return bool(quoted or called)


def test_every_protocol_method_has_an_entry() -> None:
    assert sorted(COVERAGE) == sorted(protocol_methods()), "see CONTRIBUTING.md, 'Adding a method'"


@pytest.mark.parametrize("method", sorted(COVERAGE))
def test_the_named_tests_exist_use_the_server_and_exercise_the_method(method: str) -> None:
    assert COVERAGE[method], method
    for entry in COVERAGE[method]:
        file, name = entry.split("::")
        functions = functions_of(file)
        assert name in functions, f"{entry} not found"
        node, code = functions[name]
        fixtures = {arg.arg for arg in node.args.args}
        assert fixtures & SERVER_FIXTURES, f"{entry} does not run the server"
        assert mentions(code, method), f"{entry} never mentions {method}"


def readme_coverage() -> dict[str, tuple[str, ...]]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Tests") :]
    rows = re.findall(r"^\| `([^`]+)` \| (.+) \|$", section, flags=re.M)
    return {method: tuple(re.findall(r"`([^`]+)`", tests)) for method, tests in rows}


def test_the_readme_lists_the_coverage() -> None:
    assert readme_coverage() == COVERAGE


def test_the_check_catches_a_test_that_does_not_mention_its_method() -> None:
    assert mentions('c.sent["exit"]', "exit") and mentions("await c.run_stage(", "runStage")
    assert not mentions("c.initialize_result", "initialize")
    assert mentions('c.received["$/progress"]', "$/progress") and not mentions("on_progress=", "$/progress")


def test_every_test_file_exists() -> None:
    files = {entry.split("::")[0] for entries in COVERAGE.values() for entry in entries}
    assert all(Path(HERE / file).is_file() for file in files)
