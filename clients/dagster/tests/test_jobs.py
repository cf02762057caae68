"""The cohort jobs: shards reporting every generation, one step per generation, executors and pools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from cohort_run import run, summary
from conftest import EXAMPLE_MODEL_CALLS, edit_config
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from stagerunner_dagster import load_cohort, stagerunner_definitions
from stagerunner_dagster.workspace import model_calls

HERE = Path(__file__).resolve().parent

#: The example's generations by stage.
EXAMPLE = {
    "draft": {"d-creative", "d-analytic"},
    "essay": {"e-creative-llm", "e-creative-copy", "e-analytic-llm"},
    "evaluation": {
        "v-creative-llm-novelty",
        "v-creative-llm-rigor",
        "v-creative-copy-novelty",
        "v-analytic-llm-novelty",
        "v-analytic-llm-rigor",
    },
}


def reported(result: Any) -> dict[str, set[str]]:
    """The partitions a run reported materializations of, by asset."""
    partitions: dict[str, set[str]] = defaultdict(set)
    for event in result.get_asset_materialization_events():
        partitions[event.asset_key.to_user_string()].add(event.materialization.partition)
    return dict(partitions)


def step_windows(instance: DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """Each step's start and end, from the run's event log."""
    starts: dict[str, float] = {}
    windows: dict[str, tuple[float, float]] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or record.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[record.step_key] = record.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            windows[record.step_key] = (starts[record.step_key], record.timestamp)
    return windows


def most_at_once(windows: list[tuple[float, float]]) -> int:
    """The most windows that overlap at one moment."""
    edges = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    current = peak = 0
    for _, change in edges:
        current += change
        peak = max(peak, current)
    return peak


def test_the_shard_job_reports_every_generation_on_its_stage_asset(workspace: Path, instance: DagsterInstance) -> None:
    defs = stagerunner_definitions(workspace)
    job = defs.get_job_def("stagerunner_shards")
    assert sorted(node.name for node in job.graph.nodes) == ["shard__d_analytic", "shard__d_creative"]
    result = job.execute_in_process(instance=instance)
    assert result.success
    assert reported(result) == EXAMPLE
    for key in ("draft", "essay", "evaluation"):
        assert instance.get_materialized_partitions(AssetKey(key)) == EXAMPLE[key]
        assert set(instance.get_dynamic_partitions(f"{key}_gens")) == EXAMPLE[key]  # registered by the steps
    events = {e.materialization.partition: e.materialization for e in result.get_asset_materialization_events()}
    novelty = events["v-creative-llm-novelty"].metadata
    assert (novelty["score"].value, novelty["parent"].value, novelty["runId"].value) == (
        8.5,
        "e-creative-llm",
        result.run_id,
    )
    assert set(events["e-creative-copy"].metadata) == {
        "genId", "stage", "status", "template", "reused", "runId", "parent", "files", "directory",
    }  # fmt: skip
    assert set(events["d-creative"].metadata) == {
        "genId", "stage", "status", "template", "reused", "runId", "model", "provider", "tokens", "cost", "files",
        "directory",
    }  # fmt: skip
    verdicts = {
        (e.asset_key.to_user_string(), e.partition, e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }
    assert len(verdicts) == 10 * 3 + 5
    assert verdicts[("evaluation", "v-analytic-llm-rigor", "score_in_range")] is True
    assert model_calls(workspace) == {gen_id: 1 for gen_id in EXAMPLE_MODEL_CALLS}


def test_shards_are_whole_trees_and_pack_into_fewer_steps(workspace: Path) -> None:
    cohort = load_cohort(workspace)
    per_root = cohort.shards()
    assert [(s.name, s.roots, len(s.generations)) for s in per_root] == [
        ("shard__d_creative", ("d-creative",), 6),
        ("shard__d_analytic", ("d-analytic",), 4),
    ]
    assert [g.gen_id for g in per_root[1].generations] == [
        "d-analytic",
        "e-analytic-llm",
        "v-analytic-llm-novelty",
        "v-analytic-llm-rigor",
    ]
    [packed] = cohort.shards(max_shards=1)
    assert (packed.name, packed.roots) == ("shard_1", ("d-creative", "d-analytic"))
    assert [g.stage for g in packed.generations] == ["draft"] * 2 + ["essay"] * 3 + ["evaluation"] * 5
    job = stagerunner_definitions(workspace, max_shards=1).get_job_def("stagerunner_shards")
    assert [node.name for node in job.graph.nodes] == ["shard_1"]


def test_the_generation_job_on_the_multiprocess_executor_with_two_processes(
    workspace: Path, instance: DagsterInstance
) -> None:
    with run(str(workspace), "stagerunner_generations", 2, instance) as result:
        assert result.success
        outcome = summary(result)
        windows = step_windows(instance, result.run_id)
    assert len(outcome["stepPids"]) == 10  # a process per step
    assert len(windows) == 10 and most_at_once(list(windows.values())) <= 2
    # A child's step starts only after its parent's has finished.
    parent_of = {g.gen_id: g.parent_gen_id for g in load_cohort(workspace)}
    step_of = {gen_id: f"{stage}__{gen_id.replace('-', '_')}" for stage, ids in EXAMPLE.items() for gen_id in ids}
    for child, parent in parent_of.items():
        if parent is not None:
            assert windows[step_of[child]][0] >= windows[step_of[parent]][1]
    assert {asset: {p for a, p, _, _ in outcome["materializations"] if a == asset} for asset in EXAMPLE} == EXAMPLE
    assert not any(reused for _, _, _, reused in outcome["materializations"])
    assert model_calls(workspace) == {gen_id: 1 for gen_id in EXAMPLE_MODEL_CALLS}


def test_two_runs_at_once_on_one_workspace_call_each_generation_once(
    workspace: Path, instance: DagsterInstance, mock_provider: str
) -> None:
    def slow(config: dict[str, Any]) -> None:
        config["aliases"]["sonnet-4"] = "mock:sleep-2000"

    edit_config(workspace, slow)
    command = [sys.executable, str(HERE / "cohort_run.py"), str(workspace)]
    runs = [
        subprocess.Popen([*command, job, "2"], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
        for job in ("stagerunner_shards", "stagerunner_generations")
    ]
    outcomes = [json.loads(process.communicate(timeout=600)[0].strip().splitlines()[-1]) for process in runs]
    assert [outcome["success"] for outcome in outcomes] == [True, True]
    assert model_calls(workspace) == {gen_id: 1 for gen_id in EXAMPLE_MODEL_CALLS}
    # Both runs report every generation, with the run that generated it: the same for both.
    generated_by = [{(a, p): generator for a, p, generator, _ in outcome["materializations"]} for outcome in outcomes]
    assert len(generated_by[0]) == 10 and generated_by[0] == generated_by[1]
    assert set(generated_by[0].values()) <= {outcome["runId"] for outcome in outcomes}


def test_a_pool_limit_of_one_keeps_the_provider_s_steps_apart(workspace: Path, instance: DagsterInstance) -> None:
    instance.event_log_storage.set_concurrency_slots("stagerunner-embedded", 1)
    with run(str(workspace), "stagerunner_shards", 2, instance) as result:
        assert result.success
        windows = step_windows(instance, result.run_id)
    assert sorted(windows) == ["shard__d_analytic", "shard__d_creative"]
    assert most_at_once(list(windows.values())) == 1


def test_steps_take_the_pool_of_the_providers_they_call(workspace: Path) -> None:
    def route(config: dict[str, Any]) -> None:
        config["providers"] = {"mock": {"kind": "openai", "baseURL": "http://127.0.0.1:9/v1"}}
        config["aliases"] = {"sonnet-4": "mock:echo", "gpt-5-mini": "embedded:gpt-5-mini"}

    edit_config(workspace, route)
    defs = stagerunner_definitions(workspace)
    pools = {key: defs.resolve_assets_def(key).op.pool for key in ("draft", "essay", "evaluation")}
    assert pools == {"draft": "stagerunner-mock", "essay": "stagerunner-mock", "evaluation": "stagerunner-embedded"}
    shards = defs.get_job_def("stagerunner_shards")
    assert {node.definition.pool for node in shards.graph.nodes} == {"stagerunner-embedded+mock"}
    generations = defs.get_job_def("stagerunner_generations")
    ops = {node.name: (node.definition.name, node.definition.pool) for node in generations.graph.nodes}
    assert ops["draft__d_creative"] == ("run_generation__stagerunner_mock", "stagerunner-mock")
    assert ops["essay__e_creative_copy"] == ("run_generation", None)
    assert ops["evaluation__v_creative_llm_rigor"] == ("run_generation__stagerunner_embedded", "stagerunner-embedded")


def test_a_generation_the_server_refuses_fails_its_shard_after_the_others_are_reported(
    workspace: Path, instance: DagsterInstance
) -> None:
    membership = workspace / "data/cohorts/demo/membership.csv"
    membership.write_text(
        membership.read_text(encoding="utf-8").replace(
            "v-analytic-llm-rigor,demo,e-analytic-llm,combo-loop,scientific-rigor,gpt-5-mini",
            "v-analytic-llm-rigor,demo,e-analytic-llm,combo-loop,scientific-rigor,acme:gpt-5",
        ),
        encoding="utf-8",
    )
    job = stagerunner_definitions(workspace).get_job_def("stagerunner_shards")
    result = job.execute_in_process(instance=instance, raise_on_error=False, op_selection=["shard__d_analytic"])
    assert instance.get_run_by_id(result.run_id).status == DagsterRunStatus.FAILURE
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith(
        "1 of 4 generations of shard__d_analytic failed:\n"
        "evaluation v-analytic-llm-rigor: Model: provider 'acme' of model 'acme:gpt-5' is not configured; available: "
    )
    assert description.endswith("(code -32012); check the model id and the provider's configuration")
    assert reported(result) == {
        "draft": {"d-analytic"},
        "essay": {"e-analytic-llm"},
        "evaluation": {"v-analytic-llm-novelty"},
    }


def test_shards_can_report_only_the_failed_verdicts(workspace: Path, instance: DagsterInstance) -> None:
    def parse_failure(config: dict[str, Any]) -> None:
        config["embedded"]["rules"].insert(0, {"genId": "v-creative-llm-rigor", "response": "Rigorous, I think."})

    edit_config(workspace, parse_failure)
    job = stagerunner_definitions(workspace, passing_checks=False).get_job_def("stagerunner_shards")
    result = job.execute_in_process(instance=instance)
    assert result.success
    assert reported(result) == EXAMPLE
    verdicts = {(e.partition, e.check_name, e.passed) for e in result.get_asset_check_evaluations()}
    assert verdicts == {
        ("v-creative-llm-rigor", "status_success", False),
        ("v-creative-llm-rigor", "parsed_present", False),
        ("v-creative-llm-rigor", "score_in_range", False),
    }
