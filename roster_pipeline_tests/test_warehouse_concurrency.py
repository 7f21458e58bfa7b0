"""Districts side by side on one Postgres warehouse: staging, checks and publish of different districts
never wait on or block each other.

Each district is synced through ``sync.sync_district`` (stage → reference checks → summaries → field
diff → publish) from the project's simulator over loopback HTTP, each with its own engine as separate
Dagster step processes would have.  The first tests pause one district *inside* its checks or its
publish transaction and require another district to run its whole sync meanwhile with a 2 s
``lock_timeout``; the last runs several districts at once, round after round, one of them with broken
references, and requires every outcome to be what it is when a district runs alone.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from roster_pipeline.control.store import create_control_schema
from roster_pipeline.pipeline.sync import DistrictSyncResult, sync_district
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.registry.districts import District
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district, mutations
from roster_pipeline.simulator.district import SimulatedDistrict
from roster_pipeline.warehouse import SCHEMA_VERSION, Warehouse
from roster_pipeline.warehouse.schema import TABLES

pytestmark = pytest.mark.postgres

WAIT = 120  # seconds a paused district waits to be released before the test gives up on it


@pytest.fixture(scope="module")
def template() -> SimulatedDistrict:
    return generate_district("tiny", seed=41)


def break_references(district: SimulatedDistrict) -> set[str]:
    """Remove one class from the SIS: its enrollments now name a class that does not exist (held: ~14%
    of the enrollments are quarantined, above max_rejected_pct).  Returns those enrollments' ids."""
    classes = district.collections["classes"]
    class_id = min(classes)
    del classes[class_id]
    district.bump()
    return {
        sid
        for sid, e in district.collections["enrollments"].items()
        if e["class"]["sourcedId"] == class_id and e["status"] == "active"
    }


@contextmanager
def simulator(template: SimulatedDistrict, names: list[str]) -> Iterator[SimulatorServer]:
    tenants = [Tenant(name, f"{name}-client", f"{name}-secret", copy.deepcopy(template)) for name in names]
    with SimulatorServer(tenants) as server:
        yield server


def district_of(server: SimulatorServer, name: str) -> District:
    return District.model_validate(
        {
            "id": name,
            "name": f"District {name}",
            "sis": "infinite_campus",
            "api_host": server.url,
            "app_name": name,
            "client_id_env": f"KEY_{name.upper()}",
            "client_secret_env": f"SECRET_{name.upper()}",
            "page_size": 50,  # several pages and batches per resource
        }
    )


def environ(names: list[str]) -> dict[str, str]:
    env = {}
    for name in names:
        env[f"KEY_{name.upper()}"] = f"{name}-client"
        env[f"SECRET_{name.upper()}"] = f"{name}-secret"
    return env


def warehouse(url: str, lock_timeout: str | None = None) -> Warehouse:
    """A Warehouse with its own engine (as each Dagster step process has); ``lock_timeout`` on every
    connection turns any wait on another district's locks into an error."""
    connect_args = {"options": f"-c lock_timeout={lock_timeout}"} if lock_timeout else {}
    return Warehouse(engine=sa.create_engine(url, connect_args=connect_args))


def without_hrefs(value: Any) -> Any:
    """A record without reference ``href``s (the server serves them under its own URL)."""
    if isinstance(value, dict):
        return {k: without_hrefs(v) for k, v in value.items() if k != "href"}
    if isinstance(value, list):
        return [without_hrefs(v) for v in value]
    return value


def published(wh: Warehouse, district_id: str) -> dict[str, dict[str, Any]]:
    """{resource: {sourcedId: raw without hrefs}} of the district's alive published rows."""
    out: dict[str, dict[str, Any]] = {}
    with wh.engine.connect() as conn:
        for res in RESOURCES:
            p = TABLES[res.name].published
            rows = conn.execute(
                sa.select(p.c.sourced_id, p.c.raw).where(
                    p.c.district_id == district_id, p.c.deleted_at.is_(None)
                )
            )
            out[res.name] = {sid: without_hrefs(raw) for sid, raw in rows}
    return out


def expected(server: SimulatorServer, name: str) -> dict[str, dict[str, Any]]:
    """What the district's published rows must be: every active record the SIS serves, as served."""
    district = server.tenant(name).district
    with district.lock:
        return {
            res.name: {
                sid: without_hrefs(r)
                for sid, r in district.collections[res.collection].items()
                if r["status"] == "active"
            }
            for res in RESOURCES
        }


class Background:
    """Run ``fn`` in a thread; ``result()`` re-raises its exception in the test."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self._error = exc

    def result(self, timeout: float = WAIT) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the background sync did not finish"
        if self._error is not None:
            raise self._error
        return self._value


@contextmanager
def pause_when(engine: sa.Engine, matches: Callable[[str, Any], bool]) -> Iterator[threading.Event]:
    """Block the first statement on ``engine`` that ``matches`` (before it runs, its transaction open)
    until the block exits; yields the event set once a statement is held there."""
    reached, release = threading.Event(), threading.Event()

    def hold(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if not reached.is_set() and matches(statement, parameters):
            reached.set()
            release.wait(WAIT)

    sa.event.listen(engine, "before_cursor_execute", hold)
    try:
        yield reached
    finally:
        release.set()


def in_reference_checks(statement: str, parameters: Any) -> bool:
    """The reference checks' last statement: every check query has run in the open transaction."""
    return statement.startswith("DROP TABLE IF EXISTS roster_reference_failed")


def in_publish(statement: str, parameters: Any) -> bool:
    """Publish's last statement (the import becomes published): every publish statement has run."""
    return (
        statement.startswith("UPDATE import_runs")
        and isinstance(parameters, dict)
        and parameters.get("status") == "published"
    )


def test_an_up_to_date_schema_is_recognised_without_waiting_for_another_process(postgres_url: str) -> None:
    """Every Dagster step process creates the schema when it starts: when it is already there, no step
    queues behind another district's (each held the DDL lock of both schemas in turn)."""
    setup = Warehouse(postgres_url)
    setup.create_schema()
    create_control_schema(setup.engine)
    other = warehouse(postgres_url, lock_timeout="1s")
    with setup.engine.begin() as conn:  # another process's create_schema, mid-way
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(72317001), pg_advisory_xact_lock(72317003)"))
        assert other.create_schema() == SCHEMA_VERSION
        create_control_schema(other.engine)
    other.dispose()
    setup.dispose()


@pytest.mark.parametrize("pause", [in_reference_checks, in_publish], ids=["checks", "publish"])
def test_a_district_paused_mid_transaction_never_blocks_another(
    postgres_url: str, template: SimulatedDistrict, pause: Callable[[str, Any], bool]
) -> None:
    names = ["alpha", "beta"]
    env = environ(names)
    setup = Warehouse(postgres_url)
    setup.create_schema()
    setup.dispose()
    wh_a, wh_b = warehouse(postgres_url), warehouse(postgres_url, lock_timeout="2s")
    with simulator(template, names) as server:
        alpha, beta = district_of(server, "alpha"), district_of(server, "beta")
        # beta has something published already, so its second sync below updates rows too
        sync_district(wh_b, beta, "beta-0", RESOURCES, environ=env)
        mutations.change_users(server.tenant("beta").district, percent=10)

        with pause_when(wh_a.engine, pause) as paused:
            a_sync = Background(lambda: sync_district(wh_a, alpha, "alpha-1", RESOURCES, environ=env))
            assert paused.wait(WAIT), "alpha never reached the pause point"
            # alpha now holds, in one open transaction, every lock its checks (or publish) take
            b = sync_district(wh_b, beta, "beta-1", RESOURCES, environ=env)
            assert b.checks is not None and b.checks.passed and b.published
            assert wh_b.get_import(b.import_id).status == "published"
            assert published(wh_b, "beta") == expected(server, "beta")
            assert wh_a.get_import(a_sync_import(wh_a, "alpha")).status in ("running", "staged")
        a: DistrictSyncResult = a_sync.result()
        assert wh_a.get_import(a.import_id).status == "published"
        assert published(wh_a, "alpha") == expected(server, "alpha")
    wh_a.dispose()
    wh_b.dispose()


def a_sync_import(wh: Warehouse, district_id: str) -> int:
    import_id = wh.import_for_run(district_id, f"{district_id}-1")
    assert import_id is not None
    return import_id


def sync_at_once(
    url: str, server: SimulatorServer, names: list[str], env: dict[str, str], run: str
) -> dict[str, DistrictSyncResult]:
    """Sync the districts at the same moment, each in its own thread with its own engine; re-raises the
    first failure (a deadlock, a lock timeout)."""
    start = threading.Barrier(len(names))
    warehouses = {name: warehouse(url) for name in names}

    def one(name: str) -> DistrictSyncResult:
        start.wait(WAIT)
        return sync_district(
            warehouses[name], district_of(server, name), f"{name}-{run}", RESOURCES, environ=env
        )

    try:
        workers = {name: Background(functools.partial(one, name)) for name in names}
        return {name: worker.result() for name, worker in workers.items()}
    finally:
        for wh in warehouses.values():
            wh.dispose()


def rejects_of(wh: Warehouse, import_id: int) -> set[tuple[str, str | None, str, str, str | None]]:
    return {(r.resource, r.sourced_id, r.field, r.check, r.value) for r in wh.rejects(import_id)}


@pytest.mark.parametrize(("healthy", "rounds"), [(1, 4), (5, 2)], ids=["two-districts", "six-districts"])
def test_districts_side_by_side_publish_and_hold_exactly_as_alone(
    postgres_url: str, template: SimulatedDistrict, healthy: int, rounds: int
) -> None:
    names = [f"d{i}" for i in range(healthy)] + ["broken", "broken_alone"]
    env = environ(names)
    setup = Warehouse(postgres_url)
    setup.create_schema()
    with simulator(template, names) as server:
        missing = break_references(server.tenant("broken").district)
        assert break_references(server.tenant("broken_alone").district) == missing
        # The broken district run alone: what it must look like whatever runs beside it.
        alone = sync_district(setup, district_of(server, "broken_alone"), "alone", RESOURCES, environ=env)
        assert alone.checks is not None and not alone.checks.passed
        alone_run = setup.get_import(alone.import_id)
        alone_rejects = rejects_of(setup, alone.import_id)
        assert alone_run.status == "held"
        assert {sid for res, sid, *_ in alone_rejects if res == "enrollments"} == missing

        side_by_side = names[:-1]
        for round_no in range(rounds):
            if round_no:  # the healthy districts change a little between rounds: their publishes update rows
                for name in side_by_side[:-1]:
                    mutations.change_users(server.tenant(name).district, percent=10, seed=round_no)
            results = sync_at_once(postgres_url, server, side_by_side, env, f"r{round_no}")

            for name in side_by_side[:-1]:
                assert setup.get_import(results[name].import_id).status == "published", (round_no, name)
                assert published(setup, name) == expected(server, name), (round_no, name)
            broken = results["broken"]
            run_ = setup.get_import(broken.import_id)
            assert run_.status == "held", round_no
            assert run_.hold_reason == (alone_run.hold_reason or "").replace("broken_alone", "broken")
            assert rejects_of(setup, broken.import_id) == alone_rejects
            assert setup.current_counts("broken") == setup.current_counts("broken_alone")  # nothing published
    setup.dispose()
