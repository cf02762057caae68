"""The definitions a workspace yields, and its stage assets materialized in-process with ``materialize()``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_MODEL_CALLS, edit_config
from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterInstance,
    Definitions,
    DynamicPartitionsDefinition,
    SkipReason,
    build_sensor_context,
    materialize,
)
from sqlalchemy.exc import IntegrityError

from stagerunner_dagster import (
    ParentPartitionMapping,
    StagePartitions,
    StageRunnerResource,
    WorkspaceValidationError,
    load_cohort,
    shared_server,
    stagerunner_definitions,
)
from stagerunner_dagster.workspace import model_calls

STAGE_KEYS = [AssetKey("draft"), AssetKey("essay"), AssetKey("evaluation")]


def stage_assets(defs: Definitions) -> list[Any]:
    return [defs.resolve_assets_def(key) for key in STAGE_KEYS]


def register(defs: Definitions, instance: DagsterInstance) -> Any:
    """Materializes gen_id_partitions: the membership's gen ids become partitions."""
    result = materialize([defs.resolve_assets_def("gen_id_partitions")], instance=instance)
    assert result.success
    return result


def materialize_partition(defs: Definitions, instance: DagsterInstance, stage: str, gen_id: str) -> Any:
    return materialize(
        stage_assets(defs), partition_key=gen_id, selection=[AssetKey(stage)], instance=instance, raise_on_error=False
    )


def checks_of(result: Any) -> dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}


def test_definitions_hold_three_partitioned_stages_with_their_checks_pools_and_parents(workspace: Path) -> None:
    defs = stagerunner_definitions(workspace)
    graph = defs.resolve_asset_graph()
    assert {str(key.to_user_string()) for key in graph.get_all_asset_keys()} == {
        "draft",
        "essay",
        "evaluation",
        "gen_id_partitions",
    }
    for key in STAGE_KEYS:
        partitions = graph.get(key).partitions_def
        assert isinstance(partitions, DynamicPartitionsDefinition)
        assert partitions.name == f"{key.to_user_string()}_gens"
    checks = {(check.asset_key.to_user_string(), check.name) for check in graph.asset_check_keys}
    assert checks == {
        (stage, name)
        for stage in ("draft", "essay", "evaluation")
        for name in ("status_success", "parsed_present", "not_truncated")
    } | {("evaluation", "score_in_range")}
    # The example's models name no provider: the embedded one answers them, so its pool.
    assert {defs.resolve_assets_def(key).op.pool for key in STAGE_KEYS} == {"stagerunner-embedded"}
    mapping = graph.get(AssetKey("essay")).partition_mappings[AssetKey("draft")]
    assert isinstance(mapping, ParentPartitionMapping)
    assert mapping.parent_of == {
        "e-creative-llm": "d-creative",
        "e-creative-copy": "d-creative",
        "e-analytic-llm": "d-analytic",
    }
    assert {job.name for job in defs.resolve_all_job_defs()} >= {"stagerunner_shards", "stagerunner_generations"}


def test_registration_adds_the_membership_as_partitions_and_never_removes_one(
    workspace: Path, instance: DagsterInstance
) -> None:
    defs = stagerunner_definitions(workspace)
    instance.add_dynamic_partitions("draft_gens", ["d-retired"])
    result = register(defs, instance)
    metadata = result.asset_materializations_for_node("gen_id_partitions")[0].metadata
    assert (
        metadata["draftAdded"].value == 2
        and metadata["essayAdded"].value == 3
        and metadata["evaluationAdded"].value == 5
    )
    assert instance.get_dynamic_partitions("draft_gens") == ["d-retired", "d-creative", "d-analytic"]
    assert instance.get_dynamic_partitions("essay_gens") == ["e-creative-llm", "e-creative-copy", "e-analytic-llm"]
    assert len(instance.get_dynamic_partitions("evaluation_gens")) == 5
    again = register(defs, instance).asset_materializations_for_node("gen_id_partitions")[0].metadata
    assert (again["draftAdded"].value, again["draftPartitions"].value) == (0, 3)


def test_a_child_partition_depends_on_its_parents_partition(workspace: Path, instance: DagsterInstance) -> None:
    defs = stagerunner_definitions(workspace)
    register(defs, instance)
    graph = defs.resolve_asset_graph()
    with instance_as_partitions_store(instance):
        parents = graph.get_parents_partitions(AssetKey("evaluation"), "v-creative-copy-novelty").parent_partitions
        children = graph.get_child_partition_keys_of_parent("d-creative", AssetKey("draft"), AssetKey("essay"))
    assert {(p.asset_key.to_user_string(), p.partition_key) for p in parents} == {("essay", "e-creative-copy")}
    assert sorted(children) == ["e-creative-copy", "e-creative-llm"]


def instance_as_partitions_store(instance: DagsterInstance) -> Any:
    from dagster._core.definitions.partitions.context import partition_loading_context

    return partition_loading_context(dynamic_partitions_store=instance)


def test_a_materialization_is_one_run_stage_with_its_metadata_and_checks(
    workspace: Path, instance: DagsterInstance
) -> None:
    defs = stagerunner_definitions(workspace)
    register(defs, instance)
    result = materialize_partition(defs, instance, "evaluation", "v-creative-llm-novelty")
    assert result.success
    [event] = result.get_asset_materialization_events()
    materialization = event.materialization
    assert (materialization.asset_key, materialization.partition) == (AssetKey("evaluation"), "v-creative-llm-novelty")
    values = {key: value.value for key, value in materialization.metadata.items()}
    assert values["genId"] == "v-creative-llm-novelty"
    assert values["stage"] == "evaluation"
    assert values["status"] == "success"
    assert values["template"] == "novelty"
    assert values["model"] == "gpt-5-mini"
    assert values["provider"] == "embedded"
    assert values["parent"] == "e-creative-llm"
    assert values["score"] == 8.5
    assert values["reused"] is False
    assert values["runId"] == result.run_id  # the Dagster run is the generation's runId
    assert values["cost"] == 0.0
    assert values["tokens"] > 0
    assert values["files"] == [
        f"data/gens/evaluation/v-creative-llm-novelty/{name}"
        for name in ("prompt.txt", "raw.txt", "parsed.txt", "metadata.json")
    ]
    assert values["directory"] == str(workspace / "data/gens/evaluation/v-creative-llm-novelty")
    assert checks_of(result) == {
        "status_success": True,
        "parsed_present": True,
        "not_truncated": True,
        "score_in_range": True,
    }
    assert {e.partition for e in result.get_asset_check_evaluations()} == {"v-creative-llm-novelty"}
    # Its essay and draft were generated first, by the server, each with one model call.
    assert model_calls(workspace) == {"d-creative": 1, "e-creative-llm": 1, "v-creative-llm-novelty": 1}

    again = materialize_partition(defs, instance, "evaluation", "v-creative-llm-novelty")
    metadata = again.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["reused"].value is True and metadata["runId"].value == result.run_id
    assert model_calls(workspace)["v-creative-llm-novelty"] == 1


def test_a_copy_essay_reports_no_model_tokens_or_cost(workspace: Path, instance: DagsterInstance) -> None:
    defs = stagerunner_definitions(workspace)
    register(defs, instance)
    result = materialize_partition(defs, instance, "essay", "e-creative-copy")
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert not {"model", "provider", "tokens", "cost", "score"} & set(metadata)
    assert metadata["template"].value == "parsed-from-draft"
    assert checks_of(result) == {"status_success": True, "parsed_present": True, "not_truncated": True}


def test_every_partition_materialized_stage_by_stage_calls_each_generation_once(
    workspace: Path, instance: DagsterInstance
) -> None:
    defs = stagerunner_definitions(workspace)
    register(defs, instance)
    cohort = load_cohort(workspace)
    for stage in ("draft", "essay", "evaluation"):
        for generation in cohort.stage(stage):
            assert materialize_partition(defs, instance, stage, generation.gen_id).success
    for key in STAGE_KEYS:
        assert instance.get_materialized_partitions(key) == {g.gen_id for g in cohort.stage(key.to_user_string())}
    assert model_calls(workspace) == {gen_id: 1 for gen_id in EXAMPLE_MODEL_CALLS}


def test_the_checks_fail_on_a_parse_failure_a_truncation_and_a_score_out_of_range(
    workspace: Path, instance: DagsterInstance
) -> None:
    def scripted(config: dict[str, Any]) -> None:
        config["embedded"]["rules"][:0] = [
            {"genId": "d-analytic", "response": "Three ideas, none of them tagged."},
            {
                "genId": "v-creative-llm-rigor",
                "response": "Rigorous enough.\n\n**Final Score:** 6/10",
                "finishReason": "length",
            },
        ]

    edit_config(workspace, scripted)
    catalog = workspace / "data/1_raw/evaluation_templates.csv"
    catalog.write_text(
        "template_id,template_name,description,parser,generator,score_min,score_max,active\n"
        "novelty,Novelty,Reinvention,in_last_line,llm,0,5,true\n"
        "scientific-rigor,Scientific Rigor,Discipline,complex,llm,,,true\n",
        encoding="utf-8",
    )
    (workspace / "data/1_raw/draft_templates.csv").write_text(
        "template_id,template_name,description,parser,generator,active\n"
        "creative-synthesis,Creative Synthesis,Ideas,essay_idea_last,llm,true\n"
        "systematic-analytical,Systematic Analytical,Pairs,essay_idea_last,llm,true\n",
        encoding="utf-8",
    )
    defs = stagerunner_definitions(workspace)
    register(defs, instance)

    parse_failure = materialize_partition(defs, instance, "draft", "d-analytic")
    assert parse_failure.success  # a parse failure is a generation: the checks say what is wrong
    assert checks_of(parse_failure) == {"status_success": False, "parsed_present": False, "not_truncated": True}
    failed = {e.check_name: e.description for e in parse_failure.get_asset_check_evaluations() if not e.passed}
    assert failed["status_success"].startswith("status is parser_failure: ")

    truncated = materialize_partition(defs, instance, "evaluation", "v-creative-llm-rigor")
    assert checks_of(truncated) == {
        "status_success": False,
        "parsed_present": True,
        "not_truncated": False,
        "score_in_range": True,
    }

    out_of_range = materialize_partition(defs, instance, "evaluation", "v-creative-llm-novelty")
    [verdict] = [e for e in out_of_range.get_asset_check_evaluations() if e.check_name == "score_in_range"]
    assert (verdict.passed, verdict.description) == (False, "score 8.5 is outside 0 to 5")
    assert instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey("evaluation"), "score_in_range"), limit=1
    )


def test_a_workspace_that_fails_validation_is_refused_with_its_diagnostics(workspace: Path) -> None:
    membership = workspace / "data/cohorts/demo/membership.csv"
    membership.write_text(
        membership.read_text(encoding="utf-8") + "evaluation,v-orphan,demo,e-missing,combo-loop,novelty,gpt-5-mini\n",
        encoding="utf-8",
    )
    with pytest.raises(WorkspaceValidationError) as raised:
        stagerunner_definitions(workspace)
    assert str(raised.value) == (
        f"the StageRunner workspace {workspace} has 1 error:\n"
        "  data/cohorts/demo/membership.csv:12: parent 'e-missing' of v-orphan is not in the membership "
        "[membership.unknown-parent]"
    )
    assert raised.value.diagnostics[0]["code"] == "membership.unknown-parent"


def test_a_score_range_that_is_not_a_number_is_refused(workspace: Path) -> None:
    (workspace / "data/1_raw/evaluation_templates.csv").write_text(
        "template_id,template_name,description,parser,generator,score_min,score_max,active\n"
        "novelty,Novelty,Reinvention,in_last_line,llm,low,10,true\n"
        "scientific-rigor,Scientific Rigor,Discipline,complex,llm,9,1,true\n",
        encoding="utf-8",
    )
    with pytest.raises(WorkspaceValidationError) as raised:
        stagerunner_definitions(workspace)
    assert str(raised.value) == (
        f"the StageRunner workspace {workspace} has 2 errors:\n"
        "  data/1_raw/evaluation_templates.csv:2: score_min 'low' of 'novelty' is not a number "
        "[catalog.invalid-score-range]\n"
        "  data/1_raw/evaluation_templates.csv:3: score_min 9 of 'scientific-rigor' is above its score_max 1 "
        "[catalog.invalid-score-range]"
    )


def test_a_relative_workspace_path_is_refused(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workspace.parent)
    with pytest.raises(ValueError) as raised:
        stagerunner_definitions("daydream")
    assert str(raised.value) == (
        "the workspace must be an absolute path, not 'daydream': every process that loads these "
        "definitions must find the same workspace (build it from __file__, for example)"
    )
    resource = StageRunnerResource(workspace="daydream")
    with pytest.raises(ValueError, match="^StageRunnerResource.workspace must be an absolute path, not 'daydream'"):
        resource.server()


def test_the_workspace_comes_from_the_runs_resource_config(
    workspace: Path, tmp_path: Path, instance: DagsterInstance
) -> None:
    """A run's config names the workspace; the one the definitions were loaded with is not used."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(workspace, other)
    defs = stagerunner_definitions(workspace)
    register(defs, instance)
    job = defs.get_job_def("stagerunner_shards")
    result = job.execute_in_process(
        instance=instance,
        run_config={"resources": {"stagerunner": {"config": {"workspace": str(other)}}}},
        op_selection=["shard__d_analytic"],
    )
    assert result.success
    assert (other / "data/gens/draft/d-analytic/metadata.json").is_file()
    assert not (workspace / "data/gens").exists()


def test_steps_of_one_process_share_one_long_lived_server(workspace: Path, instance: DagsterInstance) -> None:
    defs = stagerunner_definitions(workspace)
    register(defs, instance)
    server = shared_server(str(workspace))
    pid = server.pid
    assert materialize_partition(defs, instance, "draft", "d-creative").success
    assert materialize_partition(defs, instance, "essay", "e-creative-llm").success
    assert shared_server(str(workspace)).pid == pid and server.running


def test_a_cohort_brings_the_parents_it_names_from_other_membership_files(workspace: Path) -> None:
    extra = workspace / "data/cohorts/extra"
    extra.mkdir()
    (extra / "membership.csv").write_text(
        "stage,gen_id,cohort_id,parent_gen_id,combo_id,template_id,llm_model_id\n"
        "evaluation,v-extra,extra,e-creative-llm,combo-loop,novelty,openai:gpt-5-mini\n",
        encoding="utf-8",
    )
    cohort = load_cohort(workspace, cohort="extra")
    assert [(g.stage, g.gen_id, g.provider) for g in cohort] == [
        ("draft", "d-creative", "embedded"),
        ("essay", "e-creative-llm", "embedded"),
        ("evaluation", "v-extra", "openai"),
    ]
    assert [shard.roots for shard in cohort.shards()] == [("d-creative",)]
    with pytest.raises(ValueError) as raised:
        load_cohort(workspace, cohort="missing")
    assert (
        str(raised.value)
        == "cohort 'missing' has no generations: data/cohorts/missing/membership.csv is missing or empty"
    )


def test_the_sensor_registers_new_gen_ids_and_then_skips(workspace: Path, instance: DagsterInstance) -> None:
    defs = stagerunner_definitions(workspace)
    sensor = defs.resolve_sensor_def("gen_id_partitions_sensor")
    with build_sensor_context(
        instance=instance, resources={"stagerunner": StageRunnerResource(workspace=str(workspace))}
    ) as context:
        result = sensor(context)
    requests = {
        request.partitions_def_name: list(request.partition_keys) for request in result.dynamic_partitions_requests
    }
    assert requests["draft_gens"] == ["d-creative", "d-analytic"] and len(requests["evaluation_gens"]) == 5
    register(defs, instance)
    with build_sensor_context(
        instance=instance, resources={"stagerunner": StageRunnerResource(workspace=str(workspace))}
    ) as context:
        skipped = sensor(context)
    assert isinstance(skipped, SkipReason)


def test_a_prefix_keeps_two_workspaces_apart_in_one_instance(workspace: Path) -> None:
    defs = stagerunner_definitions(workspace, prefix="daydream_")
    graph = defs.resolve_asset_graph()
    assert graph.get(AssetKey(["daydream", "essay"])).partitions_def.name == "daydream_essay_gens"
    assert {job.name for job in defs.resolve_all_job_defs()} >= {
        "daydream_stagerunner_shards",
        "daydream_stagerunner_generations",
    }
    assert defs.resolve_sensor_def("daydream_gen_id_partitions_sensor") is not None


def test_registering_gen_ids_that_another_step_adds_at_the_same_moment(
    workspace: Path, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two steps register the same gen id: the instance refuses the second insert of a key."""
    add = instance.add_dynamic_partitions
    raced: list[str] = []

    def racing_add(name: str, keys: list[str]) -> None:
        if not raced:  # another step inserts the first key between this one's look and its insert
            raced.append(name)
            add(name, keys[:1])
            raise IntegrityError("INSERT INTO dynamic_partitions", {}, Exception("UNIQUE constraint failed"))
        add(name, keys)

    monkeypatch.setattr(instance, "add_dynamic_partitions", racing_add)
    added = StagePartitions().register(instance, load_cohort(workspace))
    assert raced == ["draft_gens"] and added["draft"] == ["d-creative", "d-analytic"]
    assert instance.get_dynamic_partitions("draft_gens") == ["d-creative", "d-analytic"]
    assert len(instance.get_dynamic_partitions("evaluation_gens")) == 5
