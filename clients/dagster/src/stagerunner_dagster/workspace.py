"""A workspace's cohort as Dagster needs it: generations, their parents, providers and shards.

:func:`load_cohort` asks the server to validate the workspace first (``validateWorkspace``) and
fails with its diagnostics, so that a broken catalog or membership is reported once, with file
and line, before any asset is defined. It then reads what the protocol does not expose:

* the membership rows (``data/membership.csv``, ``data/cohorts/<cohort>/membership.csv``), as the
  server reads them, so that partitions and parent links can be declared;
* the provider of each model, from ``stagerunner.yaml``'s ``aliases`` and ``defaultProvider`` (and
  ``STAGERUNNER_DEFAULT_PROVIDER``), resolved as the server does, for Dagster's pools;
* an evaluation template's score range: the optional ``score_min`` and ``score_max`` columns of
  ``data/1_raw/evaluation_templates.csv`` (before ``active``), else the score parsers' 0 to 10.
"""

from __future__ import annotations

import csv
import math
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from stagerunner import ValidateWorkspaceResult
from stagerunner.types import Diagnostic, Stage

from .server import StageRequest, WorkspaceServer

__all__ = [
    "DEFAULT_SCORE_RANGE",
    "EMBEDDED_PROVIDER",
    "STAGES",
    "Cohort",
    "Generation",
    "ScoreRange",
    "Shard",
    "TemplateInfo",
    "WorkspaceValidationError",
    "dagster_names",
    "load_cohort",
    "parent_stage",
    "resolve_provider",
]

#: The stages in pipeline order; each one's parent stage is the one before it.
STAGES: tuple[Stage, ...] = ("draft", "essay", "evaluation")

#: The provider that answers model ids naming none, unless the workspace chooses another.
EMBEDDED_PROVIDER = "embedded"


def parent_stage(stage: Stage) -> Stage | None:
    """The stage of a generation's parent: none for drafts, the draft of an essay, the essay of an evaluation."""
    index = STAGES.index(stage)
    return STAGES[index - 1] if index > 0 else None


@dataclass(frozen=True)
class ScoreRange:
    """The scores an evaluation template may give, bounds included."""

    low: float
    high: float

    def __contains__(self, score: object) -> bool:
        return isinstance(score, int | float) and not math.isnan(score) and self.low <= score <= self.high

    def __str__(self) -> str:
        return f"{self.low:g} to {self.high:g}"


#: The range of the score parsers (in_last_line, complex), which read or scale scores to 0-10.
DEFAULT_SCORE_RANGE = ScoreRange(0.0, 10.0)


@dataclass(frozen=True)
class TemplateInfo:
    """A catalog row, as ``listTemplates`` reports it, with an evaluation's score range."""

    stage: Stage
    template_id: str
    generator: str
    parser: str | None
    active: bool
    score_range: ScoreRange | None = None


@dataclass(frozen=True)
class Generation:
    """One row of the membership: a generation the cohort calls for."""

    stage: Stage
    gen_id: str
    template_id: str
    model: str | None
    parent_gen_id: str | None
    #: The provider its model call goes to; ``None`` when it calls no model (copy essays).
    provider: str | None
    #: Where the row is: ``data/cohorts/<cohort>/membership.csv`` and its line.
    file: str
    line: int

    @property
    def request(self) -> StageRequest:
        """The ``runStage`` request that generates it."""
        return StageRequest(self.stage, self.gen_id)


@dataclass(frozen=True)
class Shard:
    """Root drafts and every generation under them, run by one step through one server."""

    name: str
    roots: tuple[str, ...]
    #: Parents before children: drafts, then their essays, then the essays' evaluations.
    generations: tuple[Generation, ...]

    @property
    def providers(self) -> frozenset[str]:
        """The providers its model calls go to."""
        return frozenset(g.provider for g in self.generations if g.provider is not None)


class WorkspaceValidationError(Exception):
    """The workspace has errors: ``validateWorkspace``'s, or a bad score range in the catalog.

    ``str(error)`` names the workspace and lists each error as ``file:line:column: message [code]``.
    """

    def __init__(self, root: str, diagnostics: Sequence[Diagnostic]) -> None:
        self.root = root
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if d["severity"] == "error"]
        lines = [f"  {_place(d)}: {d['message']} [{d['code']}]" for d in errors]
        count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
        super().__init__(f"the StageRunner workspace {root} has {count}:\n" + "\n".join(lines))


def _place(diagnostic: Diagnostic) -> str:
    place = diagnostic["file"]
    if diagnostic["line"] > 0:
        place += f":{diagnostic['line']}"
        if diagnostic["column"] > 0:
            place += f":{diagnostic['column']}"
    return place


@dataclass(frozen=True)
class Cohort:
    """The generations of a workspace's membership (or of one cohort of it), in pipeline order."""

    root: str
    #: The cohort selected (``data/cohorts/<name>/membership.csv``), or ``None`` for every membership file.
    name: str | None
    templates: Mapping[tuple[Stage, str], TemplateInfo]
    generations: Mapping[str, Generation]
    _children: Mapping[str, tuple[str, ...]] = field(repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        children: dict[str, list[str]] = {}
        for generation in self.generations.values():
            if generation.parent_gen_id is not None:
                children.setdefault(generation.parent_gen_id, []).append(generation.gen_id)
        object.__setattr__(self, "_children", {k: tuple(v) for k, v in children.items()})

    def __len__(self) -> int:
        return len(self.generations)

    def __iter__(self) -> Iterator[Generation]:
        return iter(self.generations.values())

    def stage(self, stage: Stage) -> list[Generation]:
        """The generations of ``stage``, in membership order."""
        return [g for g in self.generations.values() if g.stage == stage]

    def children(self, gen_id: str) -> list[Generation]:
        """The generations whose parent is ``gen_id``."""
        return [self.generations[child] for child in self._children.get(gen_id, ())]

    def roots(self) -> list[Generation]:
        """The drafts: each one roots a tree of essays and evaluations."""
        return self.stage("draft")

    def tree(self, root: str) -> list[Generation]:
        """``root`` and everything under it, parents before children (breadth first)."""
        order = [self.generations[root]]
        for generation in order:
            order.extend(self.children(generation.gen_id))
        return order

    def providers(self, stage: Stage | None = None) -> frozenset[str]:
        """The providers the model calls of ``stage`` (or of every stage) go to."""
        return frozenset(
            g.provider for g in self.generations.values() if g.provider is not None and stage in (None, g.stage)
        )

    def score_range(self, template_id: str) -> ScoreRange:
        """The score range of an evaluation template."""
        info = self.templates.get(("evaluation", template_id))
        return info.score_range if info is not None and info.score_range is not None else DEFAULT_SCORE_RANGE

    def shards(self, max_shards: int | None = None) -> list[Shard]:
        """The cohort cut into shards, each a set of whole trees (a root draft and everything under it).

        By default each root draft is a shard. With ``max_shards``, the trees that call the same
        providers are packed, largest first, into at most ``max_shards`` shards of about equal size
        (per set of providers), so that a big cohort runs as a few long steps rather than many
        short ones.
        """
        if max_shards is not None and max_shards < 1:
            raise ValueError(f"max_shards must be at least 1, not {max_shards}")
        trees = [self.tree(root.gen_id) for root in self.roots()]
        if max_shards is None:
            names = dagster_names(f"shard__{t[0].gen_id}" for t in trees)
            return [Shard(name, (t[0].gen_id,), tuple(t)) for name, t in zip(names, trees, strict=True)]
        by_providers: dict[frozenset[str], list[list[Generation]]] = {}
        for tree in trees:
            providers = frozenset(g.provider for g in tree if g.provider is not None)
            by_providers.setdefault(providers, []).append(tree)
        packed: list[list[list[Generation]]] = []
        for group in by_providers.values():
            bins: list[list[list[Generation]]] = [[] for _ in range(min(max_shards, len(group)))]
            sizes = [0] * len(bins)
            for tree in sorted(group, key=len, reverse=True):
                smallest = sizes.index(min(sizes))
                bins[smallest].append(tree)
                sizes[smallest] += len(tree)
            packed.extend(bins)
        width = len(str(len(packed)))
        return [
            Shard(
                f"shard_{index:0{width}d}",
                tuple(tree[0].gen_id for tree in trees_of_shard),
                tuple(_breadth_first(trees_of_shard)),
            )
            for index, trees_of_shard in enumerate(packed, start=1)
        ]


def _breadth_first(trees: Sequence[Sequence[Generation]]) -> Iterator[Generation]:
    """The generations of several trees, every draft first, then every essay, then every evaluation."""
    for stage in STAGES:
        for tree in trees:
            yield from (g for g in tree if g.stage == stage)


def dagster_names(texts: Iterable[str]) -> list[str]:
    """Each text as a distinct name that Dagster accepts for an op (``[A-Za-z0-9_]``).

    Other characters become ``_``; a name already taken gets ``_2``, ``_3``, ... .
    """
    taken: set[str] = set()
    names: list[str] = []
    for text in texts:
        base = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in text)
        name, suffix = base, 1
        while name in taken:
            suffix += 1
            name = f"{base}_{suffix}"
        taken.add(name)
        names.append(name)
    return names


# ---------------------------------------------------------------------- loading


def load_cohort(
    workspace: str | os.PathLike[str],
    *,
    cohort: str | None = None,
    server: WorkspaceServer | None = None,
    executable: str | None = None,
) -> Cohort:
    """Validate the workspace and read its cohort.

    ``cohort`` selects ``data/cohorts/<cohort>/membership.csv`` (and the parents it names from other
    membership files); ``None`` takes every membership file, as the server does. ``server`` is used
    when given; otherwise a server is spawned for the validation and closed again.

    Raises :class:`WorkspaceValidationError` when ``validateWorkspace`` reports errors or a score
    range is malformed, and :class:`ValueError` when the cohort has no membership file.
    """
    root = os.path.abspath(os.fspath(workspace))
    own_server = server is None
    active = server if server is not None else WorkspaceServer(root, executable)
    try:
        report: ValidateWorkspaceResult = active.validate_workspace()
        if not report["valid"]:
            raise WorkspaceValidationError(report["root"], report["diagnostics"])
        listed = active.list_templates()["templates"]
    finally:
        if own_server:
            active.close()
    ranges, problems = _score_ranges(Path(root))
    if problems:
        raise WorkspaceValidationError(root, problems)
    templates = {
        (t["stage"], t["id"]): TemplateInfo(
            stage=t["stage"],
            template_id=t["id"],
            generator=t["generator"],
            parser=t.get("parser"),
            active=t["active"],
            score_range=ranges.get(t["id"], DEFAULT_SCORE_RANGE) if t["stage"] == "evaluation" else None,
        )
        for t in listed
    }
    routing = _ProviderRouting.read(Path(root))
    rows = list(_membership_rows(Path(root)))
    selected = _select_cohort(rows, cohort)
    generations: dict[str, Generation] = {}
    for stage in STAGES:  # pipeline order: parents are always listed before their children
        for row in selected:
            if row["stage"] != stage:
                continue
            model = row["llm_model_id"] or None
            template = templates.get((stage, row["template_id"]))
            calls_model = template is None or template.generator == "llm"
            generations[row["gen_id"]] = Generation(
                stage=stage,
                gen_id=row["gen_id"],
                template_id=row["template_id"],
                model=model,
                parent_gen_id=row["parent_gen_id"] or None,
                provider=routing.provider(model) if calls_model and model is not None else None,
                file=row["file"],
                line=int(row["line"]),
            )
    return Cohort(root=root, name=cohort, templates=templates, generations=generations)


def _membership_files(root: Path) -> list[str]:
    """The membership files, in the server's order: ``data/membership.csv``, then each cohort's."""
    files = ["data/membership.csv"] if (root / "data/membership.csv").is_file() else []
    cohorts = root / "data/cohorts"
    if cohorts.is_dir():
        for name in sorted(entry.name for entry in cohorts.iterdir()):
            if (cohorts / name / "membership.csv").is_file():
                files.append(f"data/cohorts/{name}/membership.csv")
    return files


def _membership_rows(root: Path) -> Iterator[dict[str, str]]:
    """Every membership row as a dict of trimmed cells, with its ``file`` and ``line``."""
    for file in _membership_files(root):
        with open(root / file, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                cells = {key: (value or "").strip() for key, value in row.items() if key is not None}
                cells["file"] = file
                cells["line"] = str(reader.line_num)
                yield cells


def _select_cohort(rows: list[dict[str, str]], cohort: str | None) -> list[dict[str, str]]:
    """The rows of one cohort's file and the ancestors they name; every row for ``None``."""
    if cohort is None:
        return rows
    file = f"data/cohorts/{cohort}/membership.csv"
    chosen = {row["gen_id"] for row in rows if row["file"] == file}
    if not chosen:
        raise ValueError(f"cohort '{cohort}' has no generations: {file} is missing or empty")
    by_id = {row["gen_id"]: row for row in rows}
    pending = list(chosen)
    while pending:
        parent = by_id[pending.pop()].get("parent_gen_id", "")
        if parent and parent in by_id and parent not in chosen:
            chosen.add(parent)
            pending.append(parent)
    return [row for row in rows if row["gen_id"] in chosen]


CATALOG_FILE = "data/1_raw/evaluation_templates.csv"


def _score_ranges(root: Path) -> tuple[dict[str, ScoreRange], list[Diagnostic]]:
    """The ``score_min`` and ``score_max`` columns of the evaluation catalog, by template id."""
    ranges: dict[str, ScoreRange] = {}
    problems: list[Diagnostic] = []
    path = root / CATALOG_FILE
    if not path.is_file():
        return ranges, problems

    def problem(line: int, code: str, message: str) -> None:
        problems.append(
            Diagnostic(file=CATALOG_FILE, line=line, column=0, severity="error", code=code, message=message)
        )

    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if "score_min" not in columns and "score_max" not in columns:
            return ranges, problems
        for row in reader:
            template_id = (row.get("template_id") or "").strip()
            bounds: list[float] = []
            for column, default in (("score_min", DEFAULT_SCORE_RANGE.low), ("score_max", DEFAULT_SCORE_RANGE.high)):
                text = (row.get(column) or "").strip()
                try:
                    value = float(text) if text else default
                except ValueError:
                    value = math.nan
                if math.isnan(value) or math.isinf(value):
                    problem(
                        reader.line_num,
                        "catalog.invalid-score-range",
                        f"{column} '{text}' of '{template_id}' is not a number",
                    )
                bounds.append(value)
            low, high = bounds
            if low > high:
                problem(
                    reader.line_num,
                    "catalog.invalid-score-range",
                    f"score_min {low:g} of '{template_id}' is above its score_max {high:g}",
                )
            ranges[template_id] = ScoreRange(low, high)
    return ranges, problems


@dataclass(frozen=True)
class _ProviderRouting:
    """How the server picks a model's provider: an alias first, then ``provider:`` or the default."""

    aliases: Mapping[str, str]
    default_provider: str

    @classmethod
    def read(cls, root: Path) -> _ProviderRouting:
        config: Any = {}
        path = root / "stagerunner.yaml"
        if path.is_file():
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        aliases = config.get("aliases") or {}
        default = os.environ.get("STAGERUNNER_DEFAULT_PROVIDER") or config.get("defaultProvider") or EMBEDDED_PROVIDER
        return cls({str(k): str(v) for k, v in aliases.items()}, str(default))

    def provider(self, model: str) -> str:
        return resolve_provider(model, self.aliases, self.default_provider)


def resolve_provider(model: str, aliases: Mapping[str, str], default_provider: str) -> str:
    """The provider a model id goes to: ``openai`` for ``openai:gpt-5-mini``, the default for ``gpt-5-mini``."""
    resolved = aliases.get(model, model)
    provider, colon, _ = resolved.partition(":")
    return provider if colon else default_provider


def model_calls(workspace: Path) -> Counter[str]:
    """How many model calls the workspace's call logs hold per gen id: every host's
    (``.stagerunner/calls.sqlite`` and ``.stagerunner/hosts/*/calls.sqlite``)."""
    state = workspace / ".stagerunner"
    counts: Counter[str] = Counter()
    for log in [state / "calls.sqlite", *sorted(state.glob("hosts/*/calls.sqlite"))]:
        if log.exists():
            with sqlite3.connect(log) as connection:
                counts.update(gen_id for (gen_id,) in connection.execute("SELECT genId FROM llm_calls"))
    return counts
