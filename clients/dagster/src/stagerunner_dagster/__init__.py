"""Dagster integration of StageRunner: a workspace's cohort as assets partitioned by gen id.

* :func:`stagerunner_definitions` — the definitions of a code location for one workspace: the
  ``draft``, ``essay`` and ``evaluation`` assets with their checks, the partition registration,
  the cohort jobs (shards, or one step per generation) and the resource.
* :class:`StageRunnerResource` — the workspace (from the run's config) and one long-lived
  ``stagerunner serve`` per worker process.
* :func:`load_cohort`, :class:`Cohort` — the validated membership: generations, parents,
  providers, shards.
* The builders (:func:`build_stage_assets`, :func:`build_shard_job`, ...) for definitions of
  one's own.
"""

from __future__ import annotations

from .assets import (
    DEFAULT_POOL_PREFIX,
    build_partitions_asset,
    build_partitions_sensor,
    build_stage_assets,
    pool_name,
    stage_asset_key,
)
from .definitions import GENERATIONS_JOB, SHARDS_JOB, stagerunner_definitions, stagerunner_job
from .jobs import build_generation_job, build_shard_job
from .partitions import ParentPartitionMapping, StagePartitions
from .resource import StageRunnerResource
from .results import CHECKS, CheckVerdict, check_names, check_verdicts, generation_metadata
from .server import StageOutcome, StageRequest, WorkspaceServer, close_shared_servers, shared_server
from .workspace import (
    DEFAULT_SCORE_RANGE,
    STAGES,
    Cohort,
    Generation,
    ScoreRange,
    Shard,
    TemplateInfo,
    WorkspaceValidationError,
    load_cohort,
)

__version__ = "0.1.0"

__all__ = [
    "CHECKS",
    "DEFAULT_POOL_PREFIX",
    "DEFAULT_SCORE_RANGE",
    "GENERATIONS_JOB",
    "SHARDS_JOB",
    "STAGES",
    "CheckVerdict",
    "Cohort",
    "Generation",
    "ParentPartitionMapping",
    "ScoreRange",
    "Shard",
    "StageOutcome",
    "StagePartitions",
    "StageRequest",
    "StageRunnerResource",
    "TemplateInfo",
    "WorkspaceServer",
    "WorkspaceValidationError",
    "__version__",
    "build_generation_job",
    "build_partitions_asset",
    "build_partitions_sensor",
    "build_shard_job",
    "build_stage_assets",
    "check_names",
    "check_verdicts",
    "close_shared_servers",
    "generation_metadata",
    "load_cohort",
    "pool_name",
    "shared_server",
    "stage_asset_key",
    "stagerunner_definitions",
    "stagerunner_job",
]
