"""Error responses become RpcError subclasses carrying the server's data."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from stagerunner import (
    ERROR_CLASSES,
    BudgetError,
    ContentModified,
    InternalError,
    InvalidParams,
    InvalidRequest,
    JobError,
    MethodNotFound,
    ModelError,
    ParseError,
    RequestCancelled,
    RequestFailed,
    RpcError,
    ServerExited,
    ServerNotInitialized,
    StorageError,
    TaskError,
    TemplateError,
    TruncatedError,
    WorkspaceError,
    error_from_response,
)
from stagerunner_testkit import Spawner

EXPECTED = {
    -32700: ParseError,
    -32600: InvalidRequest,
    -32601: MethodNotFound,
    -32602: InvalidParams,
    -32603: InternalError,
    -32002: ServerNotInitialized,
    -32800: RequestCancelled,
    -32801: ContentModified,
    -32803: RequestFailed,
    -32010: WorkspaceError,
    -32011: TemplateError,
    -32012: ModelError,
    -32013: StorageError,
    -32014: TruncatedError,
    -32015: TaskError,
    -32016: JobError,
    -32017: BudgetError,
}


@pytest.mark.parametrize("code,cls", sorted(EXPECTED.items()))
def test_code_maps_to_class(code: int, cls: type[RpcError]) -> None:
    err = error_from_response({"code": code, "message": "m", "data": {"hint": "h", "field": "params.x"}})
    assert type(err) is cls and isinstance(err, RpcError)
    assert err.code == code == cls.CODE
    assert err.hint == "h" and err.field == "params.x" and err.data["hint"] == "h"
    assert ERROR_CLASSES[code] is cls
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is cls and copy.data == err.data


def test_unknown_code_and_missing_data() -> None:
    err = error_from_response({"code": -32050, "message": "later"})
    assert type(err) is RpcError and err.code == -32050 and err.data == {}
    assert err.line is None and err.file is None
    exited = pickle.loads(pickle.dumps(ServerExited(3, "tail")))
    assert exited.returncode == 3 and exited.stderr_tail == "tail"


async def test_server_errors_carry_data(spawn: Spawner, workspace: Path) -> None:
    async with spawn() as c:
        with pytest.raises(MethodNotFound) as nf:
            await c.request("no/such/method", {})
        assert nf.value.code == -32601
        assert nf.value.data["method"] == "no/such/method"
        assert "runStage" in nf.value.data["available"]

        c.check_params = False  # the next two requests are invalid on purpose
        with pytest.raises(InvalidParams) as bad:
            await c.run_stage("poem", gen_id="d-creative")  # type: ignore[arg-type]
        assert bad.value.code == -32602
        assert bad.value.field == "params.stage"
        assert bad.value.problem

        with pytest.raises(InvalidParams) as bad_type:
            await c.request("ping", [1, 2])
        assert bad_type.value.field == "params"
        c.check_params = True

        with pytest.raises(TemplateError) as tpl:
            await c.run_stage("draft", template_id="creative-synthesis", model="m")
        assert tpl.value.code == -32011
        assert tpl.value.kind == "template"
        assert tpl.value.file == "data/1_raw/templates/draft/creative-synthesis.txt"
        assert isinstance(tpl.value.line, int) and tpl.value.line >= 1
        assert tpl.value.hint

        with pytest.raises(WorkspaceError) as ws:
            await c.render_prompt("evaluation", gen_id="v-creative-llm-novelty")
        assert ws.value.code == -32010
        assert ws.value.kind == "workspace"
        assert ws.value.field == "params.passThroughFrom"
        assert not (workspace / "data" / "gens").exists()  # a dry run writes nothing

        with pytest.raises(ModelError) as model:
            await c.run_stage(
                "draft", template_id="systematic-analytical", model="acme:gpt-5", values={"concepts": []}
            )
        assert model.value.code == -32012 and model.value.field == "params.model"
        assert (model.value.kind, model.value.provider, model.value.retries) == ("unavailable", "acme", 0)
        assert model.value.http_status is None and model.value.retry_after is None and model.value.url is None

        with pytest.raises(TruncatedError) as trunc:
            await c.run_stage(
                "draft",
                gen_id="t-1",
                template_id="systematic-analytical",
                model="sonnet-4",
                prompt_text="Write at length about idle minds.",
                max_tokens=2,
                fail_on_truncation=True,
            )
        assert trunc.value.code == -32014 and trunc.value.field == "params.maxTokens"
        assert (workspace / "data/gens/draft/t-1/metadata.json").exists()

        # The connection is still fine after all of that.
        assert await c.ping(echo="ok") == {"echo": "ok"}


async def test_missing_workspace(bin_path: str, workspace: Path, tmp_path: Path) -> None:
    from stagerunner import Client

    # --workspace is checked on the command line: the server exits 64, and says why on stderr.
    with pytest.raises(ServerExited) as exited:
        async with Client.spawn(bin_path, workspace=tmp_path / "missing"):
            pass  # pragma: no cover
    assert exited.value.returncode == 64
    assert "does not exist" in exited.value.stderr_tail

    # initialize's workspaceRoot is answered -32602 with data.field.
    async with Client.spawn(bin_path, workspace, initialize=False) as c:
        with pytest.raises(InvalidParams) as err:
            await c.request("initialize", {"workspaceRoot": str(tmp_path / "missing")})
        assert err.value.field == "params.workspaceRoot"


async def test_bad_command_line_is_server_exited(bin_path: str, workspace: Path) -> None:
    from stagerunner import Client

    with pytest.raises(ServerExited) as err:
        async with Client.spawn(bin_path, workspace, args=["--no-such-option"]):
            pass  # pragma: no cover
    assert err.value.returncode == 64
    assert "no-such-option" in err.value.stderr_tail
