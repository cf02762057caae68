"""The TypedDicts of stagerunner.types must match protocol/schema, in both directions."""

from __future__ import annotations

from typing import Any

import pytest

from stagerunner import types
from stagerunner_testkit import load_schema

# TypedDict -> (schema file, JSON pointer of the object inside it)
MAPPING: dict[str, tuple[str, str]] = {
    "InitializeResult": ("initialize.result.json", ""),
    "ServerInfo": ("initialize.result.json", "/properties/serverInfo"),
    "ServerCapabilities": ("initialize.result.json", "/properties/capabilities"),
    "WorkspaceInfo": ("initialize.result.json", "/properties/workspace"),
    "PingResult": ("ping.result.json", ""),
    "StageResult": ("runStage.result.json", ""),
    "StageDebug": ("runStage.result.json", "/properties/debug"),
    "GenerationMetadata": ("metadata.json", ""),
    "Usage": ("metadata.json", "/properties/usage"),
    "RenderPromptResult": ("renderPrompt.result.json", ""),
    "ListTemplatesResult": ("listTemplates.result.json", ""),
    "Template": ("listTemplates.result.json", "/$defs/template"),
    "ValidateWorkspaceResult": ("validateWorkspace.result.json", ""),
    "Diagnostic": ("validateWorkspace.result.json", "/$defs/diagnostic"),
    "TestSleepResult": ("test-sleep.result.json", ""),
    "TestHeapResult": ("test-heap.result.json", ""),
    "StageRunParams": ("runStage.params.json", ""),
    "ProgressParams": ("progress.params.json", ""),
    "RunTaskParams": ("runTask.params.json", ""),
    "ModelConfig": ("runTask.params.json", "/properties/modelConfig/oneOf/0"),
    "TaskResult": ("runTask.result.json", ""),
    "TaskContext": ("runTask.result.json", "/$defs/context"),
    "TaskMeta": ("runTask.result.json", "/$defs/context/properties/meta"),
    "TaskModelConfig": ("runTask.result.json", "/$defs/context/properties/meta/properties/modelConfig"),
    "TaskLogEntry": ("runTask.result.json", "/$defs/logEntry"),
    "TaskErrorInfo": ("runTask.result.json", "/$defs/error"),
    "LLMMetric": ("runTask.result.json", "/$defs/llmMetric"),
    "ExecuteStageParams": ("executeStage.params.json", ""),
    "StageOutput": ("executeStage.result.json", ""),
    "JobStatus": ("status.json", ""),
    "JobTask": ("status.json", "/$defs/task"),
    "JobProgress": ("status.json", "/$defs/progress"),
    "TokenUsage": ("status.json", "/$defs/tokenUsage"),
    "JobFiles": ("status.json", "/properties/files"),
    "TaskFiles": ("status.json", "/$defs/task/properties/files"),
    "JobCancelled": ("status.json", "/properties/cancelled/oneOf/0"),
    "RunPipelineParams": ("runPipeline.params.json", ""),
    "RunPipelineOptions": ("runPipeline.params.json", "/properties/options/oneOf/0"),
    "RunPipelineResult": ("runPipeline.result.json", ""),
    "GetStatusResult": ("getStatus.result.json", ""),
    "ListJobsResult": ("listJobs.result.json", ""),
    "JobSummary": ("listJobs.result.json", "/$defs/summary"),
    "CancelJobResult": ("cancelJob.result.json", ""),
    "RetryTaskResult": ("retryTask.result.json", ""),
    "ResumeJobResult": ("resumeJob.result.json", ""),
    "GetArtifactResult": ("getArtifact.result.json", ""),
    "SubscribeStatusResult": ("subscribeStatus.result.json", ""),
    "UnsubscribeStatusResult": ("unsubscribeStatus.result.json", ""),
    "StatusChangedParams": ("statusChanged.params.json", ""),
    "PatchOperation": ("statusChanged.params.json", "/$defs/operation"),
    "DryRunStage": ("dryRun.result.json", "/$defs/stage"),
    "TaskDryRun": ("dryRun.result.json", "/$defs/task"),
    "PipelineDryRun": ("dryRun.result.json", "/$defs/pipeline"),
    "PipelineDryRunTask": ("dryRun.result.json", "/$defs/pipeline/properties/tasks/items"),
}

# Results that are a run's answer, or with dryRun the dry run's: their required members are those
# of the run's branch of the schema (JSON pointer of the subschema that lists them).
REQUIRED_AT: dict[str, str] = {
    "TaskResult": "/oneOf/0",
    "RunPipelineResult": "/else",
}


def resolve(schema: dict[str, Any], pointer: str) -> dict[str, Any]:
    node: Any = schema
    for part in [p for p in pointer.split("/") if p]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    assert isinstance(node, dict)
    return node


@pytest.mark.parametrize("name", sorted(MAPPING))
def test_typeddict_matches_schema(name: str) -> None:
    file, pointer = MAPPING[name]
    obj = resolve(load_schema(file), pointer)
    td = getattr(types, name)
    schema_keys = set(obj.get("properties", {}))
    td_keys = set(td.__annotations__)
    assert schema_keys - td_keys == set(), f"{name}: schema members without a field"
    assert td_keys - schema_keys == set(), f"{name}: fields the schema does not have"
    required = resolve(load_schema(file), REQUIRED_AT[name]) if name in REQUIRED_AT else obj
    assert set(td.__required_keys__) == set(required.get("required", [])), f"{name}: required members differ"


def test_a_run_or_its_dry_run() -> None:
    """runTask's and runPipeline's results are the run's answer, or with dryRun the dry run's."""
    task = load_schema("runTask.result.json")
    assert [branch.get("$ref") for branch in task["oneOf"]] == [None, "dryRun.result.json#/$defs/task"]
    pipeline = load_schema("runPipeline.result.json")
    assert pipeline["if"]["properties"] == {"dryRun": {"const": True}}
    assert pipeline["then"] == {"$ref": "dryRun.result.json#/$defs/pipeline"}
    union = load_schema("dryRun.result.json")["oneOf"]
    assert [branch["$ref"] for branch in union] == ["#/$defs/task", "#/$defs/pipeline"]
    assert types.DryRunResult == types.TaskDryRun | types.PipelineDryRun
    for td in (types.TaskDryRun, types.PipelineDryRun):
        assert td.__annotations__["dryRun"].__args__ == (True,)


def test_progress_value_is_the_union_of_the_schema_kinds() -> None:
    kinds = resolve(load_schema("progress.params.json"), "/properties/value")["oneOf"]
    members = {name for kind in kinds for name in kind["properties"]}
    assert set(types.ProgressValue.__annotations__) == members
    required_everywhere = set.intersection(*(set(kind["required"]) for kind in kinds))
    assert set(types.ProgressValue.__required_keys__) == required_everywhere == {"kind"}
    constants = {kind["properties"]["kind"]["const"] for kind in kinds}
    assert set(types.ProgressValue.__annotations__["kind"].__args__) == constants


def test_every_result_schema_is_covered() -> None:
    from stagerunner_testkit import SCHEMA_IDS

    covered = {file for file, pointer in MAPPING.values() if pointer == ""}
    # dryRun.result.json is a oneOf of its two $defs (TaskDryRun, PipelineDryRun): DryRunResult.
    covered |= {"dryRun.result.json"} if {"TaskDryRun", "PipelineDryRun"} <= set(MAPPING) else set()
    results = {f for f in SCHEMA_IDS if f.endswith(".result.json")}
    # shutdown's result is null and test/print's is {}: no TypedDict for those.
    assert results - covered == {"shutdown.result.json", "test-print.result.json"}
    assert "metadata.json" in covered and "status.json" in covered
