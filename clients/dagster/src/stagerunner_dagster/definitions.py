"""Everything a code location needs for one workspace: :func:`stagerunner_definitions`."""

from __future__ import annotations

import os
import warnings
from typing import Any

from dagster import DefaultSensorStatus, Definitions, ExecutorDefinition, JobDefinition, PreviewWarning

from .assets import DEFAULT_POOL_PREFIX, build_partitions_asset, build_partitions_sensor, build_stage_assets
from .jobs import build_generation_job, build_shard_job
from .partitions import StagePartitions
from .resource import StageRunnerResource
from .workspace import load_cohort

__all__ = ["GENERATIONS_JOB", "SHARDS_JOB", "stagerunner_definitions", "stagerunner_job"]

#: The names of the two cohort jobs.
SHARDS_JOB = "stagerunner_shards"
GENERATIONS_JOB = "stagerunner_generations"


def stagerunner_definitions(
    workspace: str | os.PathLike[str],
    *,
    cohort: str | None = None,
    executable: str | None = None,
    max_shards: int | None = None,
    passing_checks: bool = True,
    prefix: str = "",
    group_name: str = "stagerunner",
    pool_prefix: str = DEFAULT_POOL_PREFIX,
    executor: ExecutorDefinition | None = None,
    sensor_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> Definitions:
    """The Dagster definitions of a StageRunner workspace.

    Validates the workspace (``validateWorkspace``; :class:`~stagerunner_dagster.WorkspaceValidationError`
    lists its errors) and reads its membership, then defines:

    * the assets ``draft``, ``essay`` and ``evaluation``, partitioned by gen id (the dynamic sets
      ``draft_gens``, ``essay_gens``, ``evaluation_gens``), each child partition depending on its
      parent's, with the checks ``status_success``, ``parsed_present``, ``not_truncated`` and (for
      evaluations) ``score_in_range``;
    * ``gen_id_partitions``, an asset that registers the membership's gen ids as partitions, and
      ``gen_id_partitions_sensor``, which does the same when the membership grows (add-only);
    * the jobs ``stagerunner_shards`` (one step per shard; ``max_shards`` packs the root trees into
      that many) and ``stagerunner_generations`` (one step per generation), which report every
      generation on its asset with its checks' verdicts (only the failed ones with
      ``passing_checks=False``);
    * the resource ``stagerunner``: :class:`~stagerunner_dagster.StageRunnerResource` on this workspace.

    ``workspace`` must be an absolute path (every process that loads the definitions must find
    the same workspace). ``cohort`` selects ``data/cohorts/<cohort>/membership.csv``. ``prefix``
    goes before the asset keys (as a key prefix), the partition sets' and the sensor's names, so
    that one Dagster instance can hold several workspaces. Steps take the pool
    ``<pool_prefix><provider>`` of the provider they call.
    """
    root = os.fspath(workspace)
    if not os.path.isabs(root):
        raise ValueError(
            f"the workspace must be an absolute path, not '{root}': every process that loads these "
            "definitions must find the same workspace (build it from __file__, for example)"
        )
    members = load_cohort(root, cohort=cohort, executable=executable)
    partitions = StagePartitions(prefix)
    key_prefix = [prefix.rstrip("_")] if prefix else []
    with warnings.catch_warnings():
        # Chosen knowingly, and described in the README: checks per partition (a preview in
        # Dagster 1.13) and a partition mapping that Dagster does not ship.
        warnings.filterwarnings("ignore", category=PreviewWarning)
        warnings.filterwarnings("ignore", message="Non-built-in PartitionMappings", category=DeprecationWarning)
        stage_assets = build_stage_assets(
            members, partitions, key_prefix=key_prefix, group_name=group_name, pool_prefix=pool_prefix
        )
    return Definitions(
        assets=[
            *stage_assets,
            build_partitions_asset(members, partitions, key_prefix=key_prefix, group_name=group_name),
        ],
        jobs=[
            build_shard_job(
                members,
                partitions,
                name=f"{prefix}{SHARDS_JOB}",
                max_shards=max_shards,
                key_prefix=key_prefix,
                pool_prefix=pool_prefix,
                passing_checks=passing_checks,
            ),
            build_generation_job(
                members,
                partitions,
                name=f"{prefix}{GENERATIONS_JOB}",
                key_prefix=key_prefix,
                pool_prefix=pool_prefix,
                passing_checks=passing_checks,
            ),
        ],
        sensors=[
            build_partitions_sensor(
                members, partitions, name=f"{prefix}gen_id_partitions_sensor", default_status=sensor_status
            )
        ],
        resources={"stagerunner": StageRunnerResource(workspace=members.root, executable=executable)},
        executor=executor,
    )


def stagerunner_job(workspace: str, job_name: str = SHARDS_JOB, **options: Any) -> JobDefinition:
    """One job of :func:`stagerunner_definitions` (``options`` are its keyword arguments), resources bound.

    For running a cohort from a script on the multiprocess executor, whose step processes rebuild
    the job: ``build_reconstructable_job("stagerunner_dagster", "stagerunner_job", (workspace, name))``.
    """
    return stagerunner_definitions(workspace, **options).get_job_def(job_name)
