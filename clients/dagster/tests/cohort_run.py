"""Runs one cohort job on the multiprocess executor and prints what it reported, as JSON.

    python cohort_run.py WORKSPACE JOB MAX_CONCURRENT

The tests start it as a separate process to run two jobs at once on one workspace; the instance
is the one of ``$DAGSTER_HOME``. Prints ``{"success", "runId", "materializations": [[asset,
partition, runId of the generation, reused]], "stepPids"}``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from dagster import DagsterInstance, build_reconstructable_job, execute_job
from dagster._core.execution.job_execution_result import JobExecutionResult


def run(workspace: str, job: str, max_concurrent: int, instance: DagsterInstance) -> JobExecutionResult:
    """The job, rebuilt in each step process from the workspace, on ``max_concurrent`` processes."""
    reconstructable = build_reconstructable_job(
        "stagerunner_dagster",
        "stagerunner_job",
        reconstructable_args=(workspace, job),  # type: ignore[arg-type]  # Dagster annotates a 1-tuple
    )
    return execute_job(
        reconstructable,
        instance=instance,
        run_config={"execution": {"config": {"multiprocess": {"max_concurrent": max_concurrent}}}},
    )


def summary(result: JobExecutionResult) -> dict[str, Any]:
    """What the run reported, in plain JSON."""
    materializations = [
        [
            event.materialization.asset_key.to_user_string(),
            event.materialization.partition,
            event.materialization.metadata["runId"].value,
            event.materialization.metadata["reused"].value,
        ]
        for event in result.get_asset_materialization_events()
    ]
    pids = sorted({e.pid for e in result.all_events if e.event_type_value == "STEP_START" and e.pid is not None})
    return {"success": result.success, "runId": result.run_id, "materializations": materializations, "stepPids": pids}


def main(arguments: list[str]) -> None:
    workspace, job, max_concurrent = arguments
    with DagsterInstance.get() as instance, run(workspace, job, int(max_concurrent), instance) as result:
        print(json.dumps(summary(result)))


if __name__ == "__main__":
    main(sys.argv[1:])
