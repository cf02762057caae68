"""A big cohort through Dagster against the ideal: one server with every call in flight.

    python bench.py [--generations 1000] [--latency-ms 1000] [--concurrency 50] [--workers 1,2,4]
                    [--skip-per-root-shards] [--skip-generation-steps]

The cohort: ``generations / 10`` root drafts, each with three essays and six evaluations (two per
essay), every one a model call to the loopback mock provider (``Tests/MockModelServer``), whose
model ``sleep-<ms>`` answers after ``--latency-ms``. The provider's ``concurrency`` limit in
``stagerunner.yaml`` (``--concurrency``) holds across every server on the workspace, as a real
provider's rate limit would; the response cache is off. Each configuration runs on a fresh copy
of the workspace and a fresh Dagster instance, with its own mock server:

* ideal: one ``stagerunner serve``, every ``runStage`` sent at once;
* shards on W workers: ``stagerunner_shards`` packed into W shards (``max_shards``) on the
  multiprocess executor with ``max_concurrent`` W; then on the largest W again, reporting only
  the checks' failed verdicts (``passing_checks=False``);
* one shard per root draft, on the largest W (``--skip-per-root-shards`` leaves it out);
* ``stagerunner_generations``, one step per generation, on the largest W (the slowest by far:
  ``--skip-generation-steps`` leaves it out).

Then Dagster's own costs: a step (no-op steps on one process) and a reported generation (a
materialization and four check verdicts, in one step). Every configuration must call each
generation exactly once (the call log) and keep at most ``--concurrency`` calls in flight at the
mock. Prints a table with each wall time's ratio to the ideal.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dagster import DagsterInstance, build_reconstructable_job, execute_job

from stagerunner_dagster import WorkspaceServer, load_cohort
from stagerunner_dagster.workspace import model_calls

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import running_mock_provider  # noqa: E402  (the tests' folder, above)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
EXAMPLE = REPO / "examples" / "daydream"
KEY_VARIABLE = "STAGERUNNER_BENCH_MOCK_KEY"


@dataclass
class Measurement:
    """One configuration's wall time and what it checked."""

    name: str
    steps: int
    seconds: float
    calls_once: bool
    peak_in_flight: int
    materializations: int | None = None


# ---------------------------------------------------------------------- the workspace


def write_cohort(workspace: Path, generations: int) -> None:
    """Replaces the example's membership with a cohort of ``generations`` (a multiple of 10)."""
    shutil.rmtree(workspace / "data" / "cohorts")
    folder = workspace / "data" / "cohorts" / "bench"
    folder.mkdir(parents=True)
    drafts = ("creative-synthesis", "systematic-analytical")
    evaluations = ("novelty", "scientific-rigor")
    with open(folder / "membership.csv", "w", newline="", encoding="utf-8") as handle:
        rows = csv.writer(handle)
        rows.writerow(["stage", "gen_id", "cohort_id", "parent_gen_id", "combo_id", "template_id", "llm_model_id"])
        for root in range(generations // 10):
            draft = f"d-{root:04d}"
            rows.writerow(["draft", draft, "bench", "", "combo-loop", drafts[root % 2], "sonnet-4"])
            for e in range(3):
                essay = f"e-{root:04d}-{e}"
                rows.writerow(["essay", essay, "bench", draft, "combo-loop", "synthesis-plain", "sonnet-4"])
                for v in range(2):
                    rows.writerow(
                        [
                            "evaluation",
                            f"v-{root:04d}-{e}-{v}",
                            "bench",
                            essay,
                            "combo-loop",
                            evaluations[v],
                            "gpt-5-mini",
                        ]
                    )


def score_lines(workspace: Path) -> None:
    """Ends each evaluation template with a score line in its parser's form.

    The mock model answers with its prompt ("echo: ..."), so the evaluations parse and pass their
    checks, as a healthy cohort's would.
    """
    templates = workspace / "data" / "1_raw" / "templates" / "evaluation"
    for name, line in (("novelty.txt", "SCORE: 7"), ("scientific-rigor.txt", "**Final Score:** 7/10")):
        path = templates / name
        path.write_text(path.read_text(encoding="utf-8").rstrip("\n") + f"\n{line}\n", encoding="utf-8")


def configure_provider(workspace: Path, base_url: str, latency_ms: int, concurrency: int) -> None:
    """Every model of the cohort goes to the mock provider, under a concurrency limit; no cache."""
    path = workspace / "stagerunner.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["providers"] = {"mock": {"kind": "openai", "baseURL": base_url, "apiKeyEnv": KEY_VARIABLE}}
    config["aliases"] = {"sonnet-4": f"mock:sleep-{latency_ms}", "gpt-5-mini": f"mock:sleep-{latency_ms}"}
    config["limits"] = {"mock": {"concurrency": concurrency}}
    config["cache"] = {"default": "off"}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def peak_in_flight(base_url: str) -> int:
    with urllib.request.urlopen(f"{base_url}/in-flight", timeout=10) as response:
        return int(json.loads(response.read())["peak"])


def calls_once(workspace: Path, generations: int) -> bool:
    """Whether the call logs hold exactly one call per generation, and nothing else."""
    counts = model_calls(workspace)
    return len(counts) == generations and set(counts.values()) == {1}


# ---------------------------------------------------------------------- the configurations


class Bench:
    def __init__(self, options: argparse.Namespace, scratch: Path) -> None:
        self.options = options
        self.scratch = scratch
        self.template = scratch / "template"
        shutil.copytree(EXAMPLE, self.template)
        write_cohort(self.template, options.generations)
        score_lines(self.template)
        self.count = 0

    @contextmanager
    def fresh(self) -> Iterator[tuple[Path, str]]:
        """A fresh copy of the workspace with its own mock provider: (workspace, mock URL)."""
        self.count += 1
        workspace = self.scratch / f"run-{self.count}" / "workspace"
        shutil.copytree(self.template, workspace)
        with running_mock_provider() as base_url:
            configure_provider(workspace, f"{base_url}/v1", self.options.latency_ms, self.options.concurrency)
            yield workspace, base_url

    def ideal(self) -> Measurement:
        with self.fresh() as (workspace, base_url):
            cohort = load_cohort(workspace)
            requests = [generation.request for generation in cohort]
            server = WorkspaceServer(str(workspace)).start()
            try:
                started = time.perf_counter()
                outcomes = list(server.run_stages(requests, run_id="ideal", max_in_flight=len(requests)))
                seconds = time.perf_counter() - started
            finally:
                server.close()
            failed = [o for o in outcomes if not o.ok]
            if failed:
                raise SystemExit(f"ideal: {len(failed)} requests failed, the first: {failed[0].error}")
            once = calls_once(workspace, len(cohort))
            return Measurement("ideal: one server, every call in flight", 0, seconds, once, peak_in_flight(base_url))

    def dagster(self, name: str, job: str, workers: int, **options: Any) -> Measurement:
        with self.fresh() as (workspace, base_url):
            home = workspace.parent / "dagster-home"
            home.mkdir()
            reconstructable = build_reconstructable_job(
                "stagerunner_dagster",
                "stagerunner_job",
                reconstructable_args=(str(workspace), job),  # type: ignore[arg-type]  # annotated as a 1-tuple
                reconstructable_kwargs=options,
            )
            run_config = {
                "execution": {"config": {"multiprocess": {"max_concurrent": workers}}},
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            }
            with DagsterInstance.local_temp(str(home), overrides={"telemetry": {"enabled": False}}) as instance:
                started = time.perf_counter()
                with execute_job(reconstructable, instance=instance, run_config=run_config) as result:
                    seconds = time.perf_counter() - started
                    if not result.success:
                        raise SystemExit(f"{name}: the run failed (instance {home})")
                    steps = sum(1 for e in result.all_events if e.event_type_value == "STEP_START")
                    materializations = len(result.get_asset_materialization_events())
            once = calls_once(workspace, self.options.generations)
            return Measurement(name, steps, seconds, once, peak_in_flight(base_url), materializations)

    def step_cost(self, steps: int = 9) -> float:
        """Seconds a step adds on the multiprocess executor: ``steps`` no-op steps on one process."""

        def wall(count: int) -> float:
            home = Path(tempfile.mkdtemp(dir=self.scratch))
            job = build_reconstructable_job("overhead", "noop_job", reconstructable_args=(count,))
            run_config = {
                "execution": {"config": {"multiprocess": {"max_concurrent": 1}}},
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            }
            with DagsterInstance.local_temp(str(home), overrides={"telemetry": {"enabled": False}}) as instance:
                started = time.perf_counter()
                with execute_job(job, instance=instance, run_config=run_config) as result:
                    assert result.success
                return time.perf_counter() - started

        return (wall(steps + 1) - wall(1)) / steps

    def report_cost(self, generations: int) -> float:
        """Seconds Dagster takes per reported generation (a materialization and four verdicts)."""
        from overhead import report_job

        def wall(count: int) -> float:
            home = Path(tempfile.mkdtemp(dir=self.scratch))
            with DagsterInstance.local_temp(str(home), overrides={"telemetry": {"enabled": False}}) as instance:
                started = time.perf_counter()
                quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
                assert report_job(count).execute_in_process(instance=instance, run_config=quiet).success
                return time.perf_counter() - started

        return (wall(generations) - wall(0)) / generations


def table(measurements: list[Measurement], ideal: float, concurrency: int) -> str:
    lines = [
        f"{'configuration':<54} {'steps':>5} {'wall s':>8} {'x ideal':>8} {'once':>5} {'peak':>5} {'reported':>8}",
    ]
    for m in measurements:
        reported = "" if m.materializations is None else str(m.materializations)
        peak = f"{m.peak_in_flight}" + ("!" if m.peak_in_flight > concurrency else "")
        lines.append(
            f"{m.name:<54} {m.steps:>5} {m.seconds:>8.1f} {m.seconds / ideal:>8.2f} "
            f"{'yes' if m.calls_once else 'NO':>5} {peak:>5} {reported:>8}"
        )
    return "\n".join(lines)


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generations", type=int, default=200, help="cohort size, a multiple of 10 (default 200)")
    parser.add_argument("--latency-ms", type=int, default=1000, help="the mock model's answer time (default 1000)")
    parser.add_argument("--concurrency", type=int, default=50, help="the provider's concurrency limit (default 50)")
    parser.add_argument("--workers", default="1,2,4", help="worker processes for the shard runs (default 1,2,4)")
    parser.add_argument("--skip-per-root-shards", action="store_true", help="leave out one shard per root draft")
    parser.add_argument("--skip-generation-steps", action="store_true", help="leave out one step per generation")
    options = parser.parse_args(arguments)
    if options.generations < 10 or options.generations % 10:
        parser.error("--generations must be a positive multiple of 10")
    workers = [int(w) for w in options.workers.split(",")]
    os.environ[KEY_VARIABLE] = "test-key"
    sys.path.insert(0, str(HERE))  # overhead.py, for the step processes too

    with tempfile.TemporaryDirectory(prefix="stagerunner-dagster-bench-") as scratch:
        bench = Bench(options, Path(scratch))
        cohort = f"{options.generations} generations ({options.generations // 10} root drafts)"
        limits = f"model latency {options.latency_ms} ms, provider concurrency {options.concurrency}"
        print(f"{cohort}, {limits}", flush=True)
        results = [bench.ideal()]
        print(f"  {results[0].name}: {results[0].seconds:.1f} s", flush=True)
        for count in workers:
            name = f"shards: {count} shard{'s' if count > 1 else ''} on {count} worker{'s' if count > 1 else ''}"
            results.append(bench.dagster(name, "stagerunner_shards", count, max_shards=count))
            print(f"  {name}: {results[-1].seconds:.1f} s", flush=True)
        top = max(workers)
        name = f"shards: {top} shards on {top} workers, failed verdicts only"
        results.append(bench.dagster(name, "stagerunner_shards", top, max_shards=top, passing_checks=False))
        print(f"  {name}: {results[-1].seconds:.1f} s", flush=True)
        if not options.skip_per_root_shards:
            name = f"shards: one per root draft on {max(workers)} workers"
            results.append(bench.dagster(name, "stagerunner_shards", max(workers)))
            print(f"  {name}: {results[-1].seconds:.1f} s", flush=True)
        if not options.skip_generation_steps:
            name = f"one step per generation on {max(workers)} workers"
            results.append(bench.dagster(name, "stagerunner_generations", max(workers)))
            print(f"  {name}: {results[-1].seconds:.1f} s", flush=True)
        step = bench.step_cost()
        report = bench.report_cost(min(options.generations, 1000))
    print()
    print(table(results, results[0].seconds, options.concurrency))
    print()
    print(f"Dagster per step (multiprocess executor, spawn):  {step:.2f} s")
    print(
        f"Dagster per reported generation (materialization + 4 check verdicts, SQLite instance): {report * 1000:.1f} ms"
    )
    ok = all(m.calls_once and m.peak_in_flight <= options.concurrency for m in results)
    if not ok:
        print("FAILED: a generation was not called exactly once, or the provider limit was passed", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
