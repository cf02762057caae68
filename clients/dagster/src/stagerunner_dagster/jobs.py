"""Jobs that run a whole cohort and report every generation on the stage assets.

* :func:`build_shard_job`: one step per shard (a root draft and everything under it, or several
  such trees with ``max_shards``). The step sends all of its generations to its process's server
  at once, parents first, and reports each one as it completes: an ``AssetMaterialization`` of
  its partition of the stage asset, and the asset checks' verdicts. The asset catalog then reads
  as if every partition had been materialized on its own.
* :func:`build_generation_job`: one step per generation, each depending on its parent's step, for
  comparison and for cohorts whose every call should be a Dagster step.

Both are built from the cohort known when the definitions are loaded; a step registers the
partitions it reports (add-only) before it runs.
"""

from collections.abc import Iterator, Mapping, Sequence

from dagster import (
    AssetCheckEvaluation,
    AssetMaterialization,
    DependencyDefinition,
    ExecutorDefinition,
    Failure,
    GraphDefinition,
    In,
    JobDefinition,
    NodeInvocation,
    Nothing,
    OpDefinition,
    OpExecutionContext,
    Out,
    op,
)
from stagerunner import RpcError, ServerExited, StageResult

from .assets import DEFAULT_POOL_PREFIX, pool_name, stage_asset_key
from .partitions import StagePartitions
from .resource import StageRunnerResource
from .results import check_verdicts, describe_error, materialization_event, stage_failure
from .workspace import Cohort, Generation, Shard, dagster_names

__all__ = ["build_generation_job", "build_shard_job"]

#: What a cohort step yields: a generation's materialization and its checks' verdicts.
StepEvent = AssetMaterialization | AssetCheckEvaluation


class _Reporter:
    """Reports generations on the stage assets from inside a step."""

    def __init__(
        self, cohort: Cohort, partitions: StagePartitions, key_prefix: Sequence[str], passing_checks: bool
    ) -> None:
        self.cohort = cohort
        self.partitions = partitions
        self.key_prefix = tuple(key_prefix)
        self.passing_checks = passing_checks

    def events(self, result: StageResult, workspace: str) -> Iterator[AssetMaterialization | AssetCheckEvaluation]:
        """The generation's materialization, then its checks' verdicts (the failed ones only,
        unless ``passing_checks``).

        A step yields them as each generation completes, so that they reach the event log at
        once (and stay there when a later generation fails the step).
        """
        key = stage_asset_key(result["stage"], self.key_prefix)
        yield materialization_event(result, key, workspace)
        template = result["metadata"]["template_id"]
        score_range = self.cohort.score_range(template) if result["stage"] == "evaluation" else None
        for verdict in check_verdicts(result, score_range):
            if self.passing_checks or not verdict.passed:
                yield verdict.as_evaluation(key, result["genId"])


def build_shard_job(
    cohort: Cohort,
    partitions: StagePartitions,
    *,
    name: str = "stagerunner_shards",
    max_shards: int | None = None,
    key_prefix: Sequence[str] = (),
    pool_prefix: str = DEFAULT_POOL_PREFIX,
    passing_checks: bool = True,
    executor_def: ExecutorDefinition | None = None,
) -> JobDefinition:
    """A job with one step per shard of ``cohort`` (see :meth:`Cohort.shards`), steps in parallel.

    ``passing_checks=False`` reports only the verdicts that did not pass: a partition whose checks
    show no evaluation passed them. Dagster stores each verdict as an event of its own (about as
    costly as the materialization), so this cuts the reporting of a big cohort by about four fifths.
    """
    shards = cohort.shards(max_shards)
    reporter = _Reporter(cohort, partitions, key_prefix, passing_checks)
    by_node: dict[str, Shard] = {shard.name: shard for shard in shards}
    ops: dict[str | None, OpDefinition] = {}
    dependencies: dict[NodeInvocation, dict[str, DependencyDefinition]] = {}
    for shard in shards:
        pool = pool_name(shard.providers, pool_prefix)
        if pool not in ops:
            ops[pool] = _shard_op(pool, by_node, reporter)
        dependencies[NodeInvocation(ops[pool].name, alias=shard.name)] = {}
    graph = GraphDefinition(
        name=name,
        description=f"Runs the cohort in {len(shards)} shards, each through one server with every call in flight.",
        node_defs=list(ops.values()),
        dependencies=dependencies,
    )
    return graph.to_job(executor_def=executor_def)


def _shard_op(pool: str | None, shards: Mapping[str, Shard], reporter: _Reporter) -> OpDefinition:
    @op(
        name=_op_name("run_shard", pool),
        pool=pool,
        out=Out(Nothing),
        description="Runs a shard's generations with every call in flight and reports each one on its stage asset.",
    )
    def run_shard(context: OpExecutionContext, stagerunner: StageRunnerResource) -> Iterator[StepEvent]:
        shard = shards[context.op_handle.name]
        reporter.partitions.register(context.instance, shard.generations)
        requests = [generation.request for generation in shard.generations]
        failures: list[str] = []
        for outcome in stagerunner.run_stages(requests, run_id=context.run.run_id):
            if outcome.result is not None:
                yield from reporter.events(outcome.result, stagerunner.workspace)
            else:
                assert outcome.error is not None
                message = f"{outcome.request.stage} {outcome.request.gen_id}: {describe_error(outcome.error)}"
                context.log.error(f"runStage failed: {message}")
                failures.append(message)
        if failures:
            raise Failure(
                description=f"{len(failures)} of {len(requests)} generations of {shard.name} failed:\n"
                + "\n".join(failures),
                metadata={"failed": len(failures), "generations": len(requests)},
            )

    return run_shard


def build_generation_job(
    cohort: Cohort,
    partitions: StagePartitions,
    *,
    name: str = "stagerunner_generations",
    key_prefix: Sequence[str] = (),
    pool_prefix: str = DEFAULT_POOL_PREFIX,
    passing_checks: bool = True,
    executor_def: ExecutorDefinition | None = None,
) -> JobDefinition:
    """A job with one step per generation of ``cohort``, each after its parent's step
    (``passing_checks`` as for :func:`build_shard_job`)."""
    reporter = _Reporter(cohort, partitions, key_prefix, passing_checks)
    generations = list(cohort)
    names = dagster_names(f"{g.stage}__{g.gen_id}" for g in generations)
    node_of = {g.gen_id: node for g, node in zip(generations, names, strict=True)}
    by_node: dict[str, Generation] = {node: g for g, node in zip(generations, names, strict=True)}
    ops: dict[str | None, OpDefinition] = {}
    dependencies: dict[NodeInvocation, dict[str, DependencyDefinition]] = {}
    for generation in generations:
        pool = pool_name([generation.provider] if generation.provider else [], pool_prefix)
        if pool not in ops:
            ops[pool] = _generation_op(pool, by_node, reporter)
        parent = generation.parent_gen_id
        dependencies[NodeInvocation(ops[pool].name, alias=node_of[generation.gen_id])] = (
            {"parent": DependencyDefinition(node_of[parent])} if parent in node_of else {}
        )
    graph = GraphDefinition(
        name=name,
        description=f"Runs the cohort's {len(generations)} generations, one step each, every child after its parent.",
        node_defs=list(ops.values()),
        dependencies=dependencies,
    )
    return graph.to_job(executor_def=executor_def)


def _generation_op(pool: str | None, generations: Mapping[str, Generation], reporter: _Reporter) -> OpDefinition:
    @op(
        name=_op_name("run_generation", pool),
        pool=pool,
        ins={"parent": In(Nothing)},
        out=Out(Nothing),
        description="Runs one generation and reports it on its stage asset.",
    )
    def run_generation(context: OpExecutionContext, stagerunner: StageRunnerResource) -> Iterator[StepEvent]:
        generation = generations[context.op_handle.name]
        reporter.partitions.register(context.instance, [generation])
        try:
            result = stagerunner.run_stage(generation.request, run_id=context.run.run_id)
        except (RpcError, ServerExited) as error:
            raise stage_failure(generation.request, error) from error
        yield from reporter.events(result, stagerunner.workspace)

    return run_generation


def _op_name(base: str, pool: str | None) -> str:
    """``run_shard`` for steps without a pool, ``run_shard__stagerunner_openai`` for the pool ``stagerunner-openai``."""
    return base if pool is None else dagster_names([f"{base}__{pool}"])[0]
