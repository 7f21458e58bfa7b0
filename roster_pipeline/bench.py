"""`roster-pipeline bench`: sync a simulated district into Postgres and print honest figures.

The simulator runs in its own process so that serving pages does not share the GIL with the client;
the sync goes through the same functions the Dagster assets call (``roster_pipeline.sync``).  Figures:
wall time per resource and in all, records/s, and peak RSS of the sync process and of the simulator.

``--mode delta`` measures what a nightly delta costs against a full pull: a full sync, then
``change_users(percent=--change-percent)`` on the simulator (its loopback admin endpoint), then a delta
sync, and a line comparing records fetched, HTTP requests and seconds of the two.
"""

from __future__ import annotations

import argparse
import os
import resource as rlimit
import time
import uuid
from typing import TYPE_CHECKING

import httpx
import sqlalchemy as sa

if TYPE_CHECKING:
    from roster_pipeline.sync import DistrictSyncResult

DEFAULT_BENCH_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/roster_bench"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=("tiny", "small", "large"), default="large")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ROSTER_DATABASE_URL", DEFAULT_BENCH_URL),
        help="warehouse to sync into; a Postgres database that does not exist yet is created "
        f"(default: ROSTER_DATABASE_URL, else {DEFAULT_BENCH_URL})",
    )
    parser.add_argument("--runs", type=int, default=1, help="sync this many times (the 2nd shows a no-change sync)")
    parser.add_argument(
        "--mode",
        choices=("full", "delta"),
        default="full",
        help="delta: a full sync, change_users(--change-percent) on the simulator, then a delta sync, compared",
    )
    parser.add_argument("--change-percent", type=float, default=1.0, help="share of users changed before the delta")


def ensure_database(url: str) -> None:
    """Create the benchmark's Postgres database when it is missing (SQLite creates itself)."""
    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        return
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}).scalar()
        if not exists:
            conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident set size in MB: this process from getrusage, another from /proc (VmHWM)."""
    if pid is None:
        return rlimit.getrusage(rlimit.RUSAGE_SELF).ru_maxrss / 1024
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run(args: argparse.Namespace) -> int:
    from roster_pipeline.districts import District
    from roster_pipeline.resources import RESOURCES
    from roster_pipeline.simulator.testing import SimulatorProcess
    from roster_pipeline.sync import sync_district
    from roster_pipeline.warehouse import Warehouse

    ensure_database(args.database_url)
    warehouse = Warehouse(args.database_url)
    warehouse.create_schema()
    secret = uuid.uuid4().hex
    env = {"ROSTER_BENCH_KEY": "bench-client", "ROSTER_BENCH_SECRET": secret}
    print(f"starting the simulator ({args.size}, seed {args.seed}) ...", flush=True)
    started = time.perf_counter()
    with SimulatorProcess(
        size=args.size, seed=args.seed, app_name="bench", client_id="bench-client", client_secret=secret
    ) as sim:
        print(f"simulator ready in {time.perf_counter() - started:.1f}s at {sim.url}", flush=True)
        district = District.model_validate(
            {
                "id": f"bench_{args.size}",
                "name": f"Benchmark district ({args.size})",
                "sis": "infinite_campus",
                "api_host": sim.url,
                "app_name": "bench",
                "client_id_env": "ROSTER_BENCH_KEY",
                "client_secret_env": "ROSTER_BENCH_SECRET",
                "page_size": args.page_size,
                "max_concurrency": args.concurrency,
            }
        )
        def one_sync(label: str, mode: str) -> DistrictSyncResult:
            result = sync_district(
                warehouse, district, f"bench-{uuid.uuid4().hex[:8]}", RESOURCES, sync_mode=mode, environ=env  # type: ignore[arg-type]
            )
            print(f"\n{label}: {args.size} district, page size {args.page_size}, concurrency {args.concurrency}, "
                  f"{result.mode.describe() if result.mode else mode}")
            print_result(result)
            return result

        if args.mode == "delta":
            full = one_sync("full", "full")
            changed = change_users(sim.url, "bench", args.change_percent)
            print(f"\nsimulator: change_users(percent={args.change_percent}) changed {changed} users")
            delta = one_sync("delta", "delta")
            print_comparison(full, delta)
        else:
            for n in range(1, args.runs + 1):
                one_sync(f"run {n}", "full")
        print(f"peak RSS: sync process {peak_rss_mb():.0f} MB, simulator {peak_rss_mb(sim.pid):.0f} MB")
    return 0


def print_result(result: DistrictSyncResult) -> None:
    total = sum(r.fetched for r in result.staged.values())
    print(f"{'resource':<18}{'records':>10}{'pages':>7}{'requests':>9}{'seconds':>9}{'rec/s':>10}{'added':>9}"
          f"{'updated':>9}{'deleted':>9}")
    for name, r in result.staged.items():
        c = result.published.get(name, r.changes)
        print(f"{name:<18}{r.fetched:>10}{r.pages:>7}{r.requests:>9}{r.seconds:>9.1f}{r.records_per_second:>10.0f}"
              f"{c.added:>9}{c.updated:>9}{c.deleted:>9}")
    if result.checks is not None and not result.checks.passed:
        print(f"import {result.import_id} HELD by its checks: {result.checks.reason()}")
    print(f"total: {total} records in {result.seconds:.1f}s wall = {total / result.seconds:.0f} records/s")


def totals(result: DistrictSyncResult) -> tuple[int, int, float]:
    """(records fetched, HTTP requests, wall seconds) of a whole district sync."""
    staged = result.staged.values()
    return sum(r.fetched for r in staged), sum(r.requests for r in staged), result.seconds


def print_comparison(full: DistrictSyncResult, delta: DistrictSyncResult) -> None:
    (fr, fq, fs), (dr, dq, ds) = totals(full), totals(delta)
    print(f"\ndelta vs full: records {dr} / {fr} = {100 * dr / max(fr, 1):.2f}%, "
          f"requests {dq} / {fq} = {100 * dq / max(fq, 1):.1f}%, seconds {ds:.2f} / {fs:.2f} = {100 * ds / fs:.1f}%")


def change_users(simulator_url: str, app_name: str, percent: float) -> int:
    """Apply ``change_users`` through the simulator's loopback admin endpoint (it runs in another process)."""
    response = httpx.post(
        f"{simulator_url}/_simulator/{app_name}/mutations",
        json={"kind": "change_users", "params": {"percent": percent, "seed": 1}},
        timeout=600,
    )
    response.raise_for_status()
    return int(response.json()["changes"]["users"]["updated"])
