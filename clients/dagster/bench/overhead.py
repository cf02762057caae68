"""Jobs that measure what Dagster itself costs: a step, and the events of a reported generation.

Step processes of the multiprocess executor rebuild these jobs from this module, so it holds
module-level functions only (``build_reconstructable_job("overhead", "noop_job", (steps,))``).
"""

from collections.abc import Iterator

from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    AssetMaterialization,
    GraphDefinition,
    JobDefinition,
    NodeInvocation,
    Nothing,
    OpExecutionContext,
    Out,
    op,
)

from stagerunner_dagster.results import CHECKS


@op
def noop() -> None:
    """A step that does nothing: what remains of its time is Dagster's."""


def noop_job(steps: int) -> JobDefinition:
    """``steps`` independent steps that do nothing."""
    dependencies: dict[NodeInvocation, dict[str, object]] = {
        NodeInvocation("noop", alias=f"noop_{index}"): {} for index in range(steps)
    }
    return GraphDefinition(name="noop_steps", node_defs=[noop], dependencies=dependencies).to_job()  # type: ignore[arg-type]


def report_job(generations: int) -> JobDefinition:
    """One step that reports ``generations`` generations as a shard step does: a materialization
    with the integration's metadata and a verdict per check, for each."""

    @op(name="report", out=Out(Nothing))
    def report(context: OpExecutionContext) -> Iterator[AssetMaterialization | AssetCheckEvaluation]:
        key = AssetKey("evaluation")
        for index in range(generations):
            gen_id = f"v-{index:05d}"
            yield AssetMaterialization(
                asset_key=key,
                partition=gen_id,
                metadata={
                    "genId": gen_id,
                    "stage": "evaluation",
                    "status": "success",
                    "template": "novelty",
                    "reused": False,
                    "runId": context.run.run_id,
                    "parent": f"e-{index:05d}",
                    "model": "gpt-5-mini",
                    "provider": "mock",
                    "tokens": 308,
                    "cost": None,
                    "score": 8.5,
                    "files": [
                        f"data/gens/evaluation/{gen_id}/{name}" for name in ("prompt.txt", "raw.txt", "metadata.json")
                    ],
                },
            )
            for name in CHECKS:
                yield AssetCheckEvaluation(asset_key=key, check_name=name, passed=True, partition=gen_id)

    return GraphDefinition(name="report_generations", node_defs=[report]).to_job()
