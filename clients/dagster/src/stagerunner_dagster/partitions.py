"""Partitions by gen id: one dynamic partition set per stage, and the child-to-parent mapping.

As in the pipeline StageRunner comes from, each stage has a dynamic partition set keyed by gen id
(``draft_gens``, ``essay_gens``, ``evaluation_gens``), filled from the membership and never
pruned here: registering is add-only, so a partition's history survives a membership edit.

A child's partition depends on its parent's (an essay on its draft, an evaluation on its essay)
through :class:`ParentPartitionMapping`, which reads the parent from the membership. Dagster
ships no mapping between two dynamic sets keyed differently; it keeps a mapping of its own kind
for runs and the asset graph of the code location, but does not send it to the webserver and
the daemon, which show and plan such a dependency as identity (see the README).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from dagster import DagsterInstance, DynamicPartitionsDefinition, PartitionMapping, PartitionsDefinition
from dagster._core.definitions.partitions.mapping.partition_mapping import UpstreamPartitionsResult
from dagster._core.definitions.partitions.subset import PartitionsSubset
from sqlalchemy.exc import IntegrityError
from stagerunner.types import Stage

from .workspace import STAGES, Generation

if TYPE_CHECKING:
    from dagster._core.instance import DynamicPartitionsStore

__all__ = ["ParentPartitionMapping", "StagePartitions"]

#: How often registering partitions is tried when other processes keep adding the same keys.
REGISTER_ATTEMPTS = 5


class StagePartitions:
    """The dynamic partition set of each stage, named ``<prefix><stage>_gens``."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.by_stage: dict[Stage, DynamicPartitionsDefinition] = {
            stage: DynamicPartitionsDefinition(name=f"{prefix}{stage}_gens") for stage in STAGES
        }

    def __getitem__(self, stage: Stage) -> DynamicPartitionsDefinition:
        return self.by_stage[stage]

    def name(self, stage: Stage) -> str:
        """The name of the stage's partition set in the Dagster instance."""
        name = self.by_stage[stage].name
        assert name is not None
        return name

    def missing(self, instance: DagsterInstance, generations: Iterable[Generation]) -> dict[Stage, list[str]]:
        """The gen ids of ``generations`` that are not partitions yet, by stage, in the order given."""
        wanted: dict[Stage, list[str]] = {}
        for generation in generations:
            wanted.setdefault(generation.stage, []).append(generation.gen_id)
        missing: dict[Stage, list[str]] = {}
        for stage, keys in wanted.items():
            known = set(instance.get_dynamic_partitions(self.name(stage)))
            new = [key for key in dict.fromkeys(keys) if key not in known]
            if new:
                missing[stage] = new
        return missing

    def register(self, instance: DagsterInstance, generations: Iterable[Generation]) -> dict[Stage, list[str]]:
        """Add the gen ids of ``generations`` that are not partitions yet (add-only).

        Returns them by stage. Steps of runs going at once may register the same gen ids: a key
        another process added meanwhile is not added twice.
        """
        generations = list(generations)
        added = self.missing(instance, generations)
        pending = added
        for attempt in range(REGISTER_ATTEMPTS):
            try:
                for stage, keys in pending.items():
                    instance.add_dynamic_partitions(self.name(stage), keys)
                break
            except IntegrityError:  # another process added one of them since we looked
                if attempt == REGISTER_ATTEMPTS - 1:
                    raise
                pending = self.missing(instance, generations)
        return added


class ParentPartitionMapping(PartitionMapping):
    """Each partition of a child stage depends on one partition of its parent stage: its parent's gen id.

    ``parent_of`` maps a child gen id to its parent gen id (the membership's ``parent_gen_id``).
    A child missing from it (a row added after the definitions were loaded) depends on nothing
    until the code location is reloaded.
    """

    def __init__(self, child_stage: Stage, parent_of: Mapping[str, str]) -> None:
        self.child_stage = child_stage
        self.parent_of = dict(parent_of)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ParentPartitionMapping)
            and other.child_stage == self.child_stage
            and other.parent_of == self.parent_of
        )

    def __hash__(self) -> int:
        return hash((self.child_stage, frozenset(self.parent_of.items())))

    @property
    def description(self) -> str:
        return f"each {self.child_stage} depends on its parent's partition (parent_gen_id in the membership)"

    def validate_partition_mapping(
        self,
        upstream_partitions_def: PartitionsDefinition,
        downstream_partitions_def: PartitionsDefinition | None,
    ) -> None:
        for side, definition in (("upstream", upstream_partitions_def), ("downstream", downstream_partitions_def)):
            if not isinstance(definition, DynamicPartitionsDefinition):
                raise ValueError(
                    f"ParentPartitionMapping needs dynamic partitions; the {side} asset has {definition!r}"
                )

    def get_downstream_partitions_for_partitions(
        self,
        upstream_partitions_subset: PartitionsSubset,
        upstream_partitions_def: PartitionsDefinition,
        downstream_partitions_def: PartitionsDefinition,
        current_time: datetime | None = None,
        dynamic_partitions_store: DynamicPartitionsStore | None = None,
    ) -> PartitionsSubset:
        parents = set(upstream_partitions_subset.get_partition_keys())
        children = [child for child, parent in self.parent_of.items() if parent in parents]
        return downstream_partitions_def.empty_subset().with_partition_keys(children)

    def get_upstream_mapped_partitions_result_for_partitions(
        self,
        downstream_partitions_subset: PartitionsSubset | None,
        downstream_partitions_def: PartitionsDefinition | None,
        upstream_partitions_def: PartitionsDefinition,
        current_time: datetime | None = None,
        dynamic_partitions_store: DynamicPartitionsStore | None = None,
    ) -> UpstreamPartitionsResult:
        children = downstream_partitions_subset.get_partition_keys() if downstream_partitions_subset else []
        parents = list(dict.fromkeys(self.parent_of[c] for c in children if c in self.parent_of))
        existing, nonexistent = parents, []
        name = (
            upstream_partitions_def.name if isinstance(upstream_partitions_def, DynamicPartitionsDefinition) else None
        )
        if dynamic_partitions_store is not None and name is not None:
            known = set(dynamic_partitions_store.get_dynamic_partitions(name))
            existing = [p for p in parents if p in known]
            nonexistent = [p for p in parents if p not in known]
        empty = upstream_partitions_def.empty_subset()
        return UpstreamPartitionsResult(
            partitions_subset=empty.with_partition_keys(existing),
            required_but_nonexistent_subset=empty.with_partition_keys(nonexistent),
        )
