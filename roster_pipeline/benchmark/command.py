"""`roster-pipeline bench`: the real Dagster job against the machine's limit, dlt and a naive script.

Phases (each a measured child process, against one simulator process):

1. limit    - the same pages at the same concurrency, orjson, COPY into unlogged tables (``limit.py``)
2. full     - ``sync_district`` (first full sync into an empty warehouse)          (``dagster_run.py``)
3. nochange - the same job again, the SIS unchanged
4. naive    - page size 100, sequential, stdlib json, pandas ``to_sql``             (``naive.py``)
5. dlt      - dlt's rest_api source into its postgres destination, in its own venv (``dlt_run.py``)
6. delta    - ``change_users(percent=1)`` on the simulator, then a delta run of the job
7. small    - the job on the ``small`` district, for its peak RSS

and the last line printed is ``full_s=… limit_s=… … checks_overhead=…`` (``report.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from roster_pipeline.benchmark import dlt_run, limit, naive
from roster_pipeline.benchmark.dagster_run import DagsterBench, JobRun
from roster_pipeline.benchmark.measure import Usage, peak_rss_of, run_measured
from roster_pipeline.benchmark.report import Figures, print_job_run, print_loader, print_targets
from roster_pipeline.benchmark.rig import (
    APP_NAME,
    CLIENT_ID,
    BenchDistrict,
    change_users,
    child_env,
    new_secret,
)
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.warehouse.databases import drop_schema, fresh_database, libpq_url, url_for_display

if TYPE_CHECKING:  # at run time imported only when a simulator starts (simulator.__init__)
    from roster_pipeline.simulator.testing import SimulatorProcess

DEFAULT_BENCH_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/roster_bench"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=("tiny", "small", "large"), default="large")
    parser.add_argument("--seed", type=int, default=5, help="simulator seed (large, seed 5: 1.33M records)")
    parser.add_argument("--page-size", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ROSTER_BENCH_DATABASE_URL", DEFAULT_BENCH_URL),
        help="Postgres database to sync into: dropped and created again when its name contains 'bench', "
        f"else it must be empty (default: ROSTER_BENCH_DATABASE_URL, else {DEFAULT_BENCH_URL})",
    )
    parser.add_argument(
        "--change-percent", type=float, default=1.0, help="share of users changed before the delta"
    )
    parser.add_argument(
        "--with-dlt",
        action="store_true",
        help="run dlt, first installing dlt[postgres] into --dlt-venv if it is not there",
    )
    parser.add_argument(
        "--dlt-venv",
        type=Path,
        default=dlt_run.DEFAULT_VENV,
        help=f"the virtualenv dlt runs in, never the project's (default {dlt_run.DEFAULT_VENV})",
    )
    parser.add_argument("--naive-page-size", type=int, default=naive.PAGE_SIZE)
    for part, what in (
        ("limit", "the machine's limit loader"),
        ("nochange", "the second, no-change full sync"),
        ("naive", "the naive script (slow on large: ~10k requests and to_sql of 1.3M rows)"),
        ("dlt", "dlt even when its venv exists"),
        ("delta", "change_users + the delta sync"),
        ("small", "the small district's run (rss_small_mb)"),
    ):
        parser.add_argument(f"--skip-{part}", action="store_true", help=f"do not run {what}")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the Dagster home, registry and logs here (default: a temporary folder, removed)",
    )


def run(args: argparse.Namespace) -> int:
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="roster-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return Bench(args, workdir).run()
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


class Bench:
    """One benchmark invocation: the phases in order, the figures they produce, the printing."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.figures = Figures()
        self.cpu: dict[str, tuple[float, float]] = {}  # phase -> (loader CPU s, simulator CPU s)
        self.dagster = DagsterBench(workdir, args.database_url)

    def note(self, phase: str, usage: Usage) -> None:
        self.cpu[phase] = (usage.cpu_s, usage.sim_cpu_s)

    def run(self) -> int:
        args = self.args
        fresh_database(args.database_url)
        print(
            f"warehouse: {url_for_display(args.database_url)} (empty); work folder {self.workdir}", flush=True
        )
        with simulator(args.size, args.seed) as (sim, secret):
            district = self.bench_district(sim, secret, args.size, args.seed)
            expected = expected_counts(district)
            print(
                f"{args.size} district, seed {args.seed}: {sum(expected.values())} records; page size "
                f"{args.page_size}, concurrency {args.concurrency}",
                flush=True,
            )
            if not args.skip_limit:
                self.limit(district, expected)
            self.full(district, expected)
            if not args.skip_nochange:
                self.figures.nochange_s = self.job(
                    district, "nochange", "full", "second full sync, no change"
                ).wall_s
            if not args.skip_naive:
                self.naive(district, expected)
            self.dlt(district, expected)
            if not args.skip_delta:
                changed = change_users(district.simulator_url, APP_NAME, args.change_percent)
                print(
                    f"\nsimulator: change_users(percent={args.change_percent}) changed {changed} users",
                    flush=True,
                )
                self.figures.delta_s = self.job(
                    district, "delta", "delta", "delta sync after the change"
                ).wall_s
            assert sim.process is not None
            print(
                f"\npeak RSS: sync process {self.figures.rss_mb:.0f} MB, simulator {peak_rss_of(sim.pid):.0f} MB"
            )
        if args.size == "small":
            self.figures.rss_small_mb = self.figures.rss_mb
        elif not args.skip_small:
            self.small()
        print_targets(self.figures, self.cpu)
        print(self.figures.final_line(), flush=True)
        return 0

    def bench_district(self, sim: SimulatorProcess, secret: str, size: str, seed: int) -> BenchDistrict:
        district = BenchDistrict(
            district_id=f"bench_{size}",
            size=size,
            seed=seed,
            simulator_url=sim.url,
            token_url=sim.token_url,
            base_url=sim.base_url,
            page_size=self.args.page_size,
            concurrency=self.args.concurrency,
            simulator_pid=sim.pid,
            client_secret=secret,
        )
        self.dagster.add_district(district)
        return district

    def job(self, district: BenchDistrict, label: str, mode: str, header: str) -> JobRun:
        print(f"\n[{label}] running sync_district ({mode}) ...", flush=True)
        result = self.dagster.run(district, label, mode)
        print_job_run(result, header)
        self.note(label, result.usage)
        return result

    def full(self, district: BenchDistrict, expected: dict[str, int]) -> None:
        result = self.job(district, "full", "full", "first full sync")
        self.figures.full_s = result.wall_s
        self.figures.rss_mb = result.usage.peak_rss_mb
        validate, check = result.stage_total("validate"), result.stage_total("check")
        self.figures.validate_s = math.nan if validate is None else validate
        self.figures.check_s = math.nan if check is None else check
        got = {r.name: result.rows_fetched.get(r.name, 0) for r in RESOURCES}
        if got != expected:
            print(f"  WARNING: the job fetched {got}, the simulator holds {expected}")

    def limit(self, district: BenchDistrict, expected: dict[str, int]) -> None:
        print("\n[limit] the same pages, orjson, COPY into unlogged tables ...", flush=True)
        command = [
            sys.executable,
            "-m",
            "roster_pipeline.benchmark.limit",
            "--base-url",
            district.base_url,
            "--token-url",
            district.token_url,
            "--page-size",
            str(district.page_size),
            "--concurrency",
            str(district.concurrency),
            "--dsn",
            libpq_url(self.args.database_url),
        ]
        usage, output = self.measured_child("limit", command, district)
        print_loader("machine's limit", usage, output["records"], expected, output.get("requests"))
        self.figures.limit_s = usage.wall_s
        drop_schema(self.args.database_url, limit.SCHEMA)

    def naive(self, district: BenchDistrict, expected: dict[str, int]) -> None:
        print(
            f"\n[naive] page size {self.args.naive_page_size}, sequential, json, pandas to_sql ...",
            flush=True,
        )
        command = [
            sys.executable,
            "-m",
            "roster_pipeline.benchmark.naive",
            "--base-url",
            district.base_url,
            "--token-url",
            district.token_url,
            "--database-url",
            self.args.database_url,
            "--page-size",
            str(self.args.naive_page_size),
        ]
        usage, output = self.measured_child("naive", command, district)
        print_loader("naive script", usage, output["records"], expected, output.get("requests"))
        print(f"  the naive script took {usage.wall_s:.1f}s")
        self.figures.naive_s = usage.wall_s
        drop_schema(self.args.database_url, naive.SCHEMA)

    def dlt(self, district: BenchDistrict, expected: dict[str, int]) -> None:
        args = self.args
        if args.skip_dlt:
            print("\ndlt: skipped (--skip-dlt)")
            return
        version = dlt_run.ensure_venv(args.dlt_venv) if args.with_dlt else dlt_run.dlt_version(args.dlt_venv)
        if not version:
            print(
                "\ndlt: not installed"
                + ("" if args.with_dlt else " (--with-dlt installs it into its own venv)")
            )
            return
        print(f"\n[dlt] dlt {version}: rest_api source -> postgres destination ...", flush=True)
        usage, records = dlt_run.run_dlt(district, args.database_url, args.dlt_venv, self.workdir)
        print_loader(f"dlt {version}", usage, records, expected)
        self.note("dlt", usage)
        self.figures.dlt_s = usage.wall_s
        drop_schema(args.database_url, dlt_run.DATASET)

    def small(self) -> None:
        """The job once on the small district (its own simulator), for the peak RSS a small district costs."""
        print("\n[small] the small district's first full sync, for its peak RSS ...", flush=True)
        with simulator("small", self.args.seed) as (sim, secret):
            district = self.bench_district(sim, secret, "small", self.args.seed)
            result = self.dagster.run(district, "small", "full")
            print_job_run(result, "small district, first full sync")
            self.note("small", result.usage)
            self.figures.rss_small_mb = result.usage.peak_rss_mb

    def measured_child(self, phase: str, command: list[str], district: BenchDistrict) -> tuple[Usage, dict]:
        log = self.workdir / f"{phase}.log"
        usage = run_measured(
            command,
            env=child_env(district.credentials_env()),
            cwd=self.workdir,
            log_path=log,
            simulator_pid=district.simulator_pid,
        )
        if usage.returncode != 0:
            raise RuntimeError(f"{phase} exited with {usage.returncode}:\n{dlt_run.tail(log)}")
        self.note(phase, usage)
        return usage, json.loads(dlt_run.last_line(log))


def expected_counts(district: BenchDistrict) -> dict[str, int]:
    """Records per resource as the simulator holds them (the count every loader must reach)."""
    counts = district.record_counts()
    return {r.name: counts.get(r.collection, 0) for r in RESOURCES}


class simulator:  # noqa: N801 - used as a context manager, reads like one
    """A SimulatorProcess with a fresh secret: ``with simulator(size, seed) as (sim, secret)``."""

    def __init__(self, size: str, seed: int) -> None:
        from roster_pipeline.simulator.testing import SimulatorProcess

        self.secret = new_secret()
        self.process = SimulatorProcess(
            size=size, seed=seed, app_name=APP_NAME, client_id=CLIENT_ID, client_secret=self.secret
        )
        self.size = size

    def __enter__(self) -> tuple[SimulatorProcess, str]:
        print(f"starting the simulator ({self.size}) ...", flush=True)
        started = time.perf_counter()
        self.process.start()
        print(
            f"simulator ready in {time.perf_counter() - started:.1f}s at {self.process.url} (pid {self.process.pid})",
            flush=True,
        )
        return self.process, self.secret

    def __exit__(self, *exc_info: object) -> None:
        self.process.stop()
