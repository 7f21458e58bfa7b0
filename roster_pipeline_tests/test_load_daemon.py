"""Load: districts launched at once through a real dagster-daemon on the production instance.

This is how the project is used after a rollover: a backfill of every district on a Postgres instance
(the shipped ``dagster.yaml``: Postgres storage, queued runs, at most ``max_concurrent_runs`` at once, one
run per district) and one Postgres warehouse.  Everything is real and out of process, as an operator
runs it: ``dagster-daemon run`` launches the runs, each in its own worker process, against twenty
simulated districts on loopback.  Judged by what gets published (each district's current counts equal
what its SIS serves), by the runs (none failed), by Postgres (no deadlock counted, every connection
given back), and it prints the figures: wall time, per-run durations, peak connections.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district
from roster_pipeline.simulator.generate import Size
from roster_pipeline.warehouse import Warehouse
from roster_pipeline_tests.paths import PROJECT_ROOT

from .pipeline_helpers import write_registry

pytestmark = pytest.mark.postgres

# Four tiny districts side by side in every run of the suite (one district at a time once hid a deadlock:
# what matters there is that the runs overlap, and a run worker's start-up alone makes them); the full
# twenty `small` districts of a real backfill are a benchmark: `python3 -m pytest -m benchmark -s`.
LOADS = [
    pytest.param((4, "tiny"), id="four-districts"),
    pytest.param((20, "small"), id="twenty-districts", marks=pytest.mark.benchmark),
]
ALL_RUNS_TIMEOUT_SECONDS = (
    1200  # a bound against a hang, not a timing check: 723 s measured at load average 15-19
)
SETTLE_TIMEOUT_SECONDS = 60


def executable(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


@dataclass
class ConnectionWatch:
    """Samples pg_stat_activity for the given databases from its own connection (which it leaves out)."""

    server_url: str
    databases: list[str]
    peak: int = 0
    peak_by_db: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._engine = sa.create_engine(
            self.server_url, pool_size=1
        )  # one connection, reused by every sample

    def count(self) -> dict[str, int]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT datname, count(*) FROM pg_stat_activity "
                    "WHERE datname = ANY(:dbs) AND pid <> pg_backend_pid() GROUP BY datname"
                ),
                {"dbs": self.databases},
            ).all()
        return {db: dict(rows).get(db, 0) for db in self.databases}

    def describe(self) -> list[tuple]:
        with self._engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT datname, pid, application_name, state, left(query, 120) FROM pg_stat_activity "
                    "WHERE datname = ANY(:dbs) AND pid <> pg_backend_pid()"
                ),
                {"dbs": self.databases},
            ).all()

    def deadlocks(self) -> dict[str, int]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT datname, deadlocks FROM pg_stat_database WHERE datname = ANY(:dbs)"),
                {"dbs": self.databases},
            ).all()
        return dict(rows)

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            now = self.count()
            self.samples += 1
            self.peak = max(self.peak, sum(now.values()))
            for db, n in now.items():
                self.peak_by_db[db] = max(self.peak_by_db.get(db, 0), n)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="pg-connection-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def dispose(self) -> None:
        self.stop()
        self._engine.dispose()


@pytest.fixture(params=LOADS)
def load(request: pytest.FixtureRequest) -> tuple[int, Size]:
    """(how many districts, their size)."""
    return request.param


@pytest.fixture()
def districts(load: tuple[int, Size]) -> list[str]:
    return [f"d{i:02d}" for i in range(1, load[0] + 1)]


@pytest.fixture()
def simulator(load: tuple[int, Size], districts: list[str]) -> Iterator[SimulatorServer]:
    """One simulator serving the districts, each with its own app name, credentials and data."""
    tenants = [
        Tenant(app, f"{app}-client", f"{app}-secret-{i}", generate_district(load[1], seed=900 + i))
        for i, app in enumerate(districts)
    ]
    with SimulatorServer(tenants) as server:
        yield server


def stop_process(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM (the daemon shuts its code server and threads down), SIGKILL only past the bound."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def failure_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [
        (
            e.dagster_event.event_specific_data.error.to_string()  # type: ignore[union-attr]
            if getattr(e.dagster_event.event_specific_data, "error", None)
            else e.message
        )
        for e in instance.all_logs(run_id)
        if e.is_dagster_event and e.dagster_event.is_failure
    ][:3]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def test_districts_at_once_through_the_daemon(
    load: tuple[int, Size],
    districts: list[str],
    production_dagster_home,
    new_postgres_database,
    postgres_server_url: str,
    simulator: SimulatorServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = production_dagster_home.path
    shutil.copy(PROJECT_ROOT / "workspace.yaml", home / "workspace.yaml")
    warehouse_url = new_postgres_database()
    environ: dict[str, str] = {}
    write_registry(
        tmp_path / "districts.yaml", simulator, environ, districts, schedule={"frequency": "manual"}
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROSTER_")},
        **production_dagster_home.env,
        **environ,
        "ROSTER_DISTRICTS_FILE": str(tmp_path / "districts.yaml"),
        "ROSTER_DATABASE_URL": warehouse_url,
        "ROSTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        # The code under test, whichever checkout runs the test.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    }
    role = {
        sa.engine.make_url(u).database or "": name
        for name, u in (
            ("dagster storage", production_dagster_home.storage_url),
            ("warehouse", warehouse_url),
        )
    }
    watch = ConnectionWatch(postgres_server_url, list(role))
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    baseline = watch.count()
    deadlocks_before = watch.deadlocks()
    watch.start()

    daemon_log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [executable("dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=home,
        env=env,
        stdout=daemon_log,
        stderr=subprocess.STDOUT,
    )
    # Entered (and exited below) so Dagster reads this instance's state storage while it loads definitions.
    instance = dg.DagsterInstance.from_config(str(home)).__enter__()
    try:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None
        started = time.monotonic()
        # One command submits the twenty runs (one per district partition) to the queue, as an operator's
        # backfill does; the daemon dequeues and launches them.
        submitted = subprocess.run(
            [
                executable("dagster"),
                "job",
                "backfill",
                "-w",
                "workspace.yaml",
                "-j",
                "sync_district",
                "--partitions",
                ",".join(districts),
                "--tags",
                json.dumps({"roster/sync_mode": "full"}),
                "--noprompt",
            ],
            check=False,
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert submitted.returncode == 0, submitted.stdout[-2000:] + submitted.stderr[-3000:]
        submit_seconds = time.monotonic() - started

        deadline = started + ALL_RUNS_TIMEOUT_SECONDS
        while True:
            runs = instance.get_runs(dg.RunsFilter(job_name="sync_district"))
            if len(runs) == len(districts) and all(r.is_finished for r in runs):
                break
            if daemon.poll() is not None or time.monotonic() > deadline:
                states = sorted((r.tags.get("dagster/partition"), r.status.value) for r in runs)
                pytest.fail(
                    f"runs not finished after {time.monotonic() - started:.0f} s (daemon exit code "
                    f"{daemon.poll()}): {states}\ndaemon log tail:\n{(tmp_path / 'daemon.log').read_text()[-3000:]}"
                )
            time.sleep(1)
        wall_seconds = time.monotonic() - started

        records = instance.get_run_records(dg.RunsFilter(job_name="sync_district"))
        by_district = {r.dagster_run.tags["dagster/partition"]: r for r in records}
        assert sorted(by_district) == districts  # one run per district
        failed = {
            d: (r.dagster_run.status.value, failure_messages(instance, r.dagster_run.run_id))
            for d, r in sorted(by_district.items())
            if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS
        }
        intervals = {d: (r.start_time or 0.0, r.end_time or 0.0) for d, r in by_district.items()}
        durations = {d: end - start for d, (start, end) in intervals.items()}
        queued = {d: (r.start_time or 0.0) - r.create_timestamp.timestamp() for d, r in by_district.items()}
        overlap = max_overlap(list(intervals.values()))
    finally:
        stop_process(daemon)
        daemon_log.close()
        instance.__exit__(None, None, None)  # disposes it

    def report(line: str) -> None:
        with capsys.disabled():  # the figures belong in every run's output, not only a failing one's
            print(line)

    children, own = (resource.getrusage(who) for who in (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF))
    cpu_children = children.ru_utime + children.ru_stime - cpu_before[0].ru_utime - cpu_before[0].ru_stime
    cpu_own = own.ru_utime + own.ru_stime - cpu_before[1].ru_utime - cpu_before[1].ru_stime
    report(
        f"\n{len(districts)} {load[1]} districts through dagster-daemon: wall {wall_seconds:.1f} s (submit {submit_seconds:.1f} s), "
        f"at most {overlap} runs at once (max_concurrent_runs {queue.max_concurrent_runs})"
    )
    report(
        "per-run seconds (run / queued before start): "
        + ", ".join(f"{d} {durations[d]:.1f}/{queued[d]:.0f}" for d in districts)
    )
    report(
        f"run seconds min {min(durations.values()):.1f} max {max(durations.values()):.1f} "
        f"mean {sum(durations.values()) / len(durations):.1f}"
    )
    report(
        f"CPU seconds: daemon, code servers, run workers and the CLI {cpu_children:.0f}; "
        f"this process (simulator, polling) {cpu_own:.0f}; load average now {os.getloadavg()[0]:.1f}"
    )
    assert not failed, f"failed runs: {failed}"
    assert overlap <= queue.max_concurrent_runs
    assert overlap >= 2, "the runs never ran side by side: nothing here was tested under concurrency"

    warehouse = Warehouse(warehouse_url)
    try:
        for district in districts:
            counts = warehouse.current_counts(district)
            collections = simulator.tenant(district).district.collections
            expected = {
                res.name: sum(1 for r in collections[res.collection].values() if r["status"] == "active")
                for res in RESOURCES
            }
            assert counts == expected, district
    finally:
        warehouse.engine.dispose()

    # Every connection given back: the daemon, its code server and every run worker are gone.
    settle = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while watch.count() != baseline and time.monotonic() < settle:
        time.sleep(0.5)
    watch.stop()
    report(
        f"peak connections {watch.peak} ({', '.join(f'{role[db]}: {n}' for db, n in watch.peak_by_db.items())}; "
        f"{watch.samples} samples), baseline {sum(baseline.values())}"
    )
    try:
        assert watch.count() == baseline, watch.describe()
        assert watch.deadlocks() == deadlocks_before
    finally:
        watch.dispose()
