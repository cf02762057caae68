"""A ``runStage`` result in Dagster's terms: materialization metadata and the asset checks' verdicts.

The same functions serve a stage asset materialized one partition at a time and a shard step
that reports many generations, so that both leave the same records in the asset catalog.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    Failure,
    MetadataValue,
)
from stagerunner import RpcError, StageResult
from stagerunner.types import Stage

from .server import StageRequest
from .workspace import ScoreRange

__all__ = [
    "CHECKS",
    "CheckVerdict",
    "check_names",
    "check_verdicts",
    "generation_metadata",
    "materialization_event",
    "stage_failure",
]

#: The asset checks, by name: what each one asserts about a generation.
CHECKS: Mapping[str, str] = {
    "status_success": "The generation's status is success (not a parse failure, a stub or a truncation).",
    "parsed_present": "The generation has parsed output (parsed.txt).",
    "not_truncated": "The model's answer was not cut at the token limit.",
    "score_in_range": "The evaluation's score was parsed and lies in its template's range (score_min to score_max).",
}


def check_names(stage: Stage) -> list[str]:
    """The checks of a stage's asset: every stage's, and the score's for evaluations."""
    return [name for name in CHECKS if name != "score_in_range" or stage == "evaluation"]


@dataclass(frozen=True)
class CheckVerdict:
    """One asset check's verdict on one generation."""

    name: str
    passed: bool
    description: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def as_result(self) -> AssetCheckResult:
        """The verdict yielded by the asset that materialized the generation."""
        return AssetCheckResult(
            check_name=self.name,
            passed=self.passed,
            description=self.description,
            metadata=dict(self.metadata),
            severity=AssetCheckSeverity.ERROR,
        )

    def as_evaluation(self, asset_key: AssetKey, partition: str) -> AssetCheckEvaluation:
        """The verdict logged by a step that reports the generation on behalf of its asset."""
        return AssetCheckEvaluation(
            asset_key=asset_key,
            check_name=self.name,
            passed=self.passed,
            description=self.description,
            metadata=dict(self.metadata),
            severity=AssetCheckSeverity.ERROR,
            partition=partition,
        )


def check_verdicts(result: StageResult, score_range: ScoreRange | None) -> list[CheckVerdict]:
    """The verdict of each of the stage's checks on ``result`` (``score_range`` for evaluations)."""
    metadata = result["metadata"]
    status = result["status"]
    verdicts = [
        CheckVerdict(
            "status_success",
            status == "success",
            "status is success" if status == "success" else f"status is {status}" + _llm_error(result),
            {"status": status},
        ),
        CheckVerdict(
            "parsed_present",
            "parsed.txt" in metadata["files"],
            "parsed.txt was written" if "parsed.txt" in metadata["files"] else "no parsed output" + _llm_error(result),
        ),
        CheckVerdict(
            "not_truncated",
            not metadata["truncated"],
            "the answer is complete"
            if not metadata["truncated"]
            else f"the answer was cut at the token limit (finish reason {metadata.get('finish_reason', 'unknown')})",
        ),
    ]
    if result["stage"] == "evaluation":
        expected = score_range if score_range is not None else ScoreRange(0.0, 10.0)
        score = result.get("score")
        if score is None:
            verdict = CheckVerdict("score_in_range", False, "no score was parsed" + _llm_error(result))
        else:
            inside = score in expected
            verdict = CheckVerdict(
                "score_in_range",
                inside,
                f"score {score:g} is {'within' if inside else 'outside'} {expected}",
                {"score": float(score), "score_min": expected.low, "score_max": expected.high},
            )
        verdicts.append(verdict)
    return verdicts


def _llm_error(result: StageResult) -> str:
    error = result["metadata"].get("llm_error")
    return f": {error}" if error else ""


def generation_metadata(result: StageResult, workspace: str) -> dict[str, Any]:
    """The metadata of a generation's materialization.

    ``genId``, ``stage``, ``status``, ``template``, ``reused``, ``runId`` (the run that generated
    it: a reused generation keeps its own), ``files`` (paths relative to the workspace) and
    ``directory``; with a model call ``model``, ``provider``, ``tokens`` and ``cost`` (``None``
    when unknown: a provider that reported no usage, a model without a price; never 0 then);
    ``parent`` for essays and evaluations; ``score`` when one was parsed.
    """
    metadata = result["metadata"]
    directory = os.path.join(workspace, "data", "gens", result["stage"], result["genId"])
    values: dict[str, Any] = {
        "genId": result["genId"],
        "stage": result["stage"],
        "status": result["status"],
        "template": metadata["template_id"],
        "reused": result["reused"],
        "runId": metadata["run_id"],
    }
    if "parent_gen_id" in metadata:
        values["parent"] = metadata["parent_gen_id"]
    if metadata["mode"] == "llm":
        usage = metadata.get("usage")
        values["model"] = metadata.get("model")
        values["provider"] = metadata.get("provider")
        values["tokens"] = usage["total_tokens"] if usage else None
        cost = metadata.get("cost_usd")
        values["cost"] = float(cost) if cost is not None else None
    if "score" in result:
        values["score"] = float(result["score"])
    values["files"] = MetadataValue.json(list(result["files"]))
    values["directory"] = MetadataValue.path(directory)
    return values


def materialization_event(result: StageResult, asset_key: AssetKey, workspace: str) -> AssetMaterialization:
    """The materialization of ``result``'s partition of ``asset_key``, as a step reports it."""
    return AssetMaterialization(
        asset_key=asset_key,
        partition=result["genId"],
        metadata=generation_metadata(result, workspace),
    )


def describe_error(error: BaseException) -> str:
    """The server's error in one line, with its hint when it gives one."""
    if isinstance(error, RpcError):
        return f"{error.message} (code {error.code})" + (f"; {error.hint}" if error.hint else "")
    return f"{type(error).__name__}: {error}"


def stage_failure(request: StageRequest, error: BaseException) -> Failure:
    """The step failure for a ``runStage`` that the server answered with an error."""
    metadata: dict[str, Any] = {"genId": request.gen_id, "stage": request.stage}
    if isinstance(error, RpcError):
        metadata["code"] = error.code
        metadata["data"] = MetadataValue.json(error.data)
    return Failure(description=f"runStage {request.stage} {request.gen_id}: {describe_error(error)}", metadata=metadata)
