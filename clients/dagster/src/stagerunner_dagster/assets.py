"""The stage assets (draft, essay, evaluation), partitioned by gen id, and the partitions' registration.

Materializing one partition of a stage asset is one ``runStage`` of that generation through the
worker process's server; its checks (:data:`~stagerunner_dagster.results.CHECKS`) are judged on
the same result. Every step names a Dagster pool per provider (:func:`pool_name`).
"""

from collections.abc import Iterable, Sequence

from dagster import (
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DefaultSensorStatus,
    MaterializeResult,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    sensor,
)
from stagerunner import RpcError, ServerExited
from stagerunner.types import Stage

from .partitions import ParentPartitionMapping, StagePartitions
from .resource import StageRunnerResource
from .results import CHECKS, check_names, check_verdicts, generation_metadata, stage_failure
from .server import StageRequest
from .workspace import STAGES, Cohort, load_cohort, parent_stage

__all__ = [
    "DEFAULT_POOL_PREFIX",
    "build_partitions_asset",
    "build_partitions_sensor",
    "build_stage_assets",
    "pool_name",
    "stage_asset_key",
]

#: The prefix of the pool names: ``stagerunner-openai``, ``stagerunner-embedded``.
DEFAULT_POOL_PREFIX = "stagerunner-"

STAGE_DESCRIPTIONS: dict[Stage, str] = {
    "draft": "Drafts of the cohort, one partition per gen id: a rendered template sent to a model.",
    "essay": "Essays written from their draft (or copied from it), one partition per gen id.",
    "evaluation": "Evaluations of an essay, scored by their template's parser, one partition per gen id.",
}


def stage_asset_key(stage: Stage, key_prefix: Sequence[str] = ()) -> AssetKey:
    """The asset key of a stage: ``draft``, ``essay``, ``evaluation``, under ``key_prefix``."""
    return AssetKey([*key_prefix, stage])


def pool_name(providers: Iterable[str], prefix: str = DEFAULT_POOL_PREFIX) -> str | None:
    """The Dagster pool of a step whose model calls go to ``providers``.

    One provider: ``<prefix><provider>``. A step calling several providers holds one pool, named
    after all of them (``stagerunner-anthropic+openai``). A step that calls no model: none.
    """
    names = sorted(set(providers))
    return f"{prefix}{'+'.join(names)}" if names else None


def build_stage_assets(
    cohort: Cohort,
    partitions: StagePartitions,
    *,
    key_prefix: Sequence[str] = (),
    group_name: str = "stagerunner",
    pool_prefix: str = DEFAULT_POOL_PREFIX,
) -> list[AssetsDefinition]:
    """The draft, essay and evaluation assets of ``cohort``, each child partition depending on its parent's."""
    return [
        _stage_asset(stage, cohort, partitions, key_prefix=key_prefix, group_name=group_name, pool_prefix=pool_prefix)
        for stage in STAGES
    ]


def _stage_asset(
    stage: Stage,
    cohort: Cohort,
    partitions: StagePartitions,
    *,
    key_prefix: Sequence[str],
    group_name: str,
    pool_prefix: str,
) -> AssetsDefinition:
    key = stage_asset_key(stage, key_prefix)
    parent = parent_stage(stage)
    deps: list[AssetDep] = []
    if parent is not None:
        parent_of = {g.gen_id: g.parent_gen_id for g in cohort.stage(stage) if g.parent_gen_id is not None}
        deps.append(
            AssetDep(stage_asset_key(parent, key_prefix), partition_mapping=ParentPartitionMapping(stage, parent_of))
        )
    check_specs = [
        AssetCheckSpec(name, asset=key, description=CHECKS[name], partitions_def=partitions[stage])
        for name in check_names(stage)
    ]

    @asset(
        key=key,
        partitions_def=partitions[stage],
        deps=deps,
        check_specs=check_specs,
        pool=pool_name(cohort.providers(stage), pool_prefix),
        group_name=group_name,
        description=STAGE_DESCRIPTIONS[stage],
        kinds={"stagerunner"},
    )
    def generation(context: AssetExecutionContext, stagerunner: StageRunnerResource) -> MaterializeResult:  # type: ignore[type-arg]  # Dagster reads the bare annotation
        request = StageRequest(stage, context.partition_key)
        try:
            result = stagerunner.run_stage(request, run_id=context.run.run_id)
        except (RpcError, ServerExited) as error:
            raise stage_failure(request, error) from error
        score_range = cohort.score_range(result["metadata"]["template_id"]) if stage == "evaluation" else None
        return MaterializeResult(
            metadata=generation_metadata(result, stagerunner.workspace),
            check_results=[verdict.as_result() for verdict in check_verdicts(result, score_range)],
        )

    return generation


def build_partitions_asset(
    cohort: Cohort,
    partitions: StagePartitions,
    *,
    key_prefix: Sequence[str] = (),
    group_name: str = "stagerunner",
) -> AssetsDefinition:
    """An asset whose materialization registers the membership's gen ids as partitions (add-only).

    It reads the membership of the run's workspace when it runs, validated first, so a cohort
    that grew since the definitions were loaded is registered in full.
    """

    @asset(
        key=AssetKey([*key_prefix, "gen_id_partitions"]),
        group_name=group_name,
        description="Registers every gen id of the membership as a partition of its stage's asset; never removes one.",
        kinds={"stagerunner"},
    )
    def gen_id_partitions(context: AssetExecutionContext, stagerunner: StageRunnerResource) -> MaterializeResult:  # type: ignore[type-arg]  # Dagster reads the bare annotation
        current = load_cohort(stagerunner.workspace, cohort=cohort.name, server=stagerunner.server())
        added = partitions.register(context.instance, current)
        metadata: dict[str, int] = {}
        for stage in STAGES:
            metadata[f"{stage}Added"] = len(added.get(stage, []))
            metadata[f"{stage}Partitions"] = len(context.instance.get_dynamic_partitions(partitions.name(stage)))
        return MaterializeResult(metadata=metadata)

    return gen_id_partitions


def build_partitions_sensor(
    cohort: Cohort,
    partitions: StagePartitions,
    *,
    name: str = "gen_id_partitions_sensor",
    minimum_interval_seconds: int = 60,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    """A sensor that registers new gen ids of the membership as partitions (add-only), without a run."""

    @sensor(name=name, minimum_interval_seconds=minimum_interval_seconds, default_status=default_status)
    def register_gen_ids(
        context: SensorEvaluationContext, stagerunner: StageRunnerResource
    ) -> SensorResult | SkipReason:
        current = load_cohort(stagerunner.workspace, cohort=cohort.name, server=stagerunner.server())
        missing = partitions.missing(context.instance, current)
        if not missing:
            return SkipReason("every gen id of the membership is a partition already")
        return SensorResult(
            dynamic_partitions_requests=[partitions[stage].build_add_request(keys) for stage, keys in missing.items()]
        )

    return register_gen_ids
