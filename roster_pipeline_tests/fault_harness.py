"""The fault table's harness: one fault = one ``FaultRow``; the ``fault_rig`` fixture (conftest.py) runs it.

A row says how to inject its fault into a running simulator (or the warehouse's database) and what the
sync must end with: ``"exact"`` (the published tables equal the simulator's truth) or ``"error"`` (the
sync raises an error naming the district and ``endpoint``, and the published tables are byte-identical
to before). ``run_fault_row`` then clears the fault, syncs again, and requires the truth.

Syncs go through ``roster_pipeline.pipeline.sync.sync_district``, the whole district without Dagster: what is
published is decided there, so that is the lowest level that shows a fault's outcome. Adding a row is
one line in ``FAULT_ROWS`` of test_fault_table.py.
"""

from __future__ import annotations

import copy
import hashlib
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from roster_pipeline.control.store import create_control_schema
from roster_pipeline.pipeline.sync import DistrictSyncResult, sync_district
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.registry.districts import District, Registry
from roster_pipeline.simulator import SimulatorServer, Tenant, mutations
from roster_pipeline.simulator.district import SimulatedDistrict
from roster_pipeline.warehouse import Warehouse
from roster_pipeline.warehouse.columns import canonical_json
from roster_pipeline.warehouse.databases import is_postgres_url
from roster_pipeline.warehouse.load import without_hrefs

from .pipeline_helpers import write_registry

APP = "faulty"
CLIENT_ID = "faulty-client"
CLIENT_SECRET = "faulty-Secret-8fK2q"
# A fault that clears on its own is retried well inside this budget; one that never clears exhausts it in
# seconds (a scheduled run keeps the production defaults: 6 retries, up to a minute apart).
FAST_CLIENT = {"max_retries": 3, "backoff_base_seconds": 0.02, "backoff_max_seconds": 1.5}

Outcome = Literal["exact", "error"]
Action = Callable[["FaultRig"], None]


@dataclass(frozen=True)
class FaultRow:
    """One row of the fault table in docs/operations.md.

    ``inject`` adds the fault before the sync; ``during`` (optional) runs when the sync stages its
    ``during_batch``-th batch (token revoked mid-sync, Postgres restarted while staging). ``settings``
    override the district's registry entry for this row (e.g. a short ``timeout_seconds``).
    """

    id: str
    inject: Action
    outcome: Outcome
    endpoint: str | None = None  # what the error must name (with the district) when outcome == "error"
    during: Action | None = None
    during_batch: int = 3
    settings: dict[str, Any] = field(default_factory=dict)
    postgres_only: bool = False  # the fault is the Postgres server's (a restart)
    both_databases: bool = False  # representative rows that also prove the outcome on the embedded default


def no_fault(rig: FaultRig) -> None:
    """For rows whose fault is entirely in ``during``."""


def add(**fault: Any) -> Action:
    """Inject one simulator fault rule: ``add(status=503, times=2, path_contains="/users")``."""
    return lambda rig: rig.server.faults.add(**fault)


# ------------------------------------------------------------------------------------------ truth


def record_hash(record: dict[str, Any]) -> str:
    """The hash the warehouse stores for a record as served (the loader's own definition)."""
    return hashlib.md5(without_hrefs(canonical_json(record))).hexdigest()


Truth = dict[str, dict[str, tuple[str, bool]]]  # resource -> sourcedId -> (record hash, alive)


def simulator_truth(district: SimulatedDistrict) -> Truth:
    """What exactly-right data is: every record the SIS serves, its content hash, alive unless tobedeleted."""
    with district.lock:
        return {
            res.name: {
                sid: (record_hash(rec), rec.get("status") != "tobedeleted")
                for sid, rec in district.collections[res.collection].items()
            }
            for res in RESOURCES
        }


def published_truth(engine: sa.Engine, district_id: str) -> Truth:
    """The same view of the published tables (the district's current school year for year-scoped ones)."""
    out: Truth = {}
    with engine.connect() as conn:
        for res in RESOURCES:
            year = ""
            if res.year_scoped:
                year = (
                    " AND school_year = (SELECT max(school_year) FROM import_runs WHERE district_id = :d"
                    " AND status = 'published')"
                )
            rows = conn.execute(
                sa.text(
                    f"SELECT sourced_id, record_hash, deleted_at FROM {res.name} WHERE district_id = :d{year}"
                ),
                {"d": district_id},
            ).all()
            out[res.name] = {sid: (digest, deleted is None) for sid, digest, deleted in rows}
    return out


def published_bytes(engine: sa.Engine) -> dict[str, list[tuple[str, ...]]]:
    """Every published and history row, every column, as text: "byte-identical" means equal to this."""
    out: dict[str, list[tuple[str, ...]]] = {}
    with engine.connect() as conn:
        for res in RESOURCES:
            for table in (res.name, f"{res.name}_history"):
                rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()
                out[table] = sorted(tuple(str(v) for v in row) for row in rows)
    return out


def assert_truth(engine: sa.Engine, district: SimulatedDistrict, district_id: str = APP) -> None:
    published, truth = published_truth(engine, district_id), simulator_truth(district)
    for res in RESOURCES:
        got, want = published[res.name], truth[res.name]
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        differing = sorted(sid for sid in set(got) & set(want) if got[sid] != want[sid])
        assert not (missing or extra or differing), (
            f"{res.name}: {len(missing)} missing {missing[:3]}, {len(extra)} extra {extra[:3]}, "
            f"{len(differing)} differing {differing[:3]}"
        )


# ------------------------------------------------------------------------------------------ the rig


class HookedWarehouse(Warehouse):
    """The real warehouse, with a hook the rig calls when the sync loads its n-th batch."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.batches = 0
        self.on_batch: dict[int, Action] = {}
        self.rig: FaultRig | None = None
        self.staging = False  # inside stage(): for faults aimed at its transaction
        self.publishing = False  # inside publish()

    def stage_rows(self, import_id: int, resource_name: str, rows: Any) -> int:
        """Every batch is loaded through here (on the sync's writer thread; ``stage`` calls it too)."""
        self.batches += 1
        action = self.on_batch.pop(self.batches, None)
        if action is not None and self.rig is not None:
            action(self.rig)
        self.staging = True
        try:
            return super().stage_rows(import_id, resource_name, rows)
        finally:
            self.staging = False

    def publish(self, import_id: int, *args: Any, **kwargs: Any) -> Any:
        self.publishing = True
        try:
            return super().publish(import_id, *args, **kwargs)
        finally:
            self.publishing = False


@dataclass
class FaultRig:
    """One simulator district, its registry entry and a warehouse, for one fault row."""

    server: SimulatorServer
    warehouse: HookedWarehouse
    registry_path: Path
    environ: dict[str, str]
    settings: dict[str, Any] = field(default_factory=dict)  # the row's registry settings, for every sync
    fault_settings: dict[str, Any] = field(default_factory=dict)  # registry settings that ARE the fault
    runs: int = 0

    @property
    def district(self) -> SimulatedDistrict:
        return self.server.tenant(APP).district

    @property
    def engine(self) -> sa.Engine:
        return self.warehouse.engine

    def registry(self, **settings: Any) -> Registry:
        chosen = {"page_size": 20, "timeout_seconds": 5, **self.settings, **self.fault_settings, **settings}
        return write_registry(self.registry_path, self.server, self.environ, [APP], **chosen)

    def district_config(self, **settings: Any) -> District:
        return self.registry(**settings).get(APP)

    def sync(
        self, during: Action | None = None, during_batch: int = 3, **settings: Any
    ) -> DistrictSyncResult:
        self.runs += 1
        self.warehouse.batches = 0
        self.warehouse.on_batch = {during_batch: during} if during else {}
        return sync_district(
            self.warehouse,
            self.district_config(**settings),
            self.run_id,
            RESOURCES,
            environ=self.environ,
            client_overrides=FAST_CLIENT,
        )

    @property
    def run_id(self) -> str:
        return f"fault-run-{self.runs}"

    def clear_faults(self) -> None:
        """The fault clears: no more simulator rules, the registry as it was."""
        self.server.faults.clear()
        self.fault_settings.clear()

    def import_statuses(self, run_id: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.text("SELECT status FROM import_runs WHERE run_id = :r"), {"r": run_id}
                ).scalars()
            )

    def published(self) -> dict[str, list[tuple[str, ...]]]:
        return published_bytes(self.engine)

    def assert_truth(self) -> None:
        assert_truth(self.engine, self.district)

    def mutate(self) -> None:
        """A day's change at the SIS, well inside the thresholds (the second-import variant)."""
        mutations.change_users(self.district, percent=10, seed=5)


@dataclass(frozen=True)
class RowOutcome:
    error: BaseException | None
    result: DistrictSyncResult | None


def run_fault_row(rig: FaultRig, row: FaultRow, variant: Literal["first", "second"]) -> RowOutcome:
    """Sync under the fault, check the outcome the row promises, clear the fault, sync again: the truth.

    The second-import variant expects a rig whose first import is in place
    (``RigFactory.after_first_import``).
    """
    if variant == "second":
        assert rig.runs == 1, "a second import needs a rig with its first import published"
        rig.mutate()
    before = rig.published()
    row.inject(rig)
    error: BaseException | None = None
    result: DistrictSyncResult | None = None
    try:
        result = rig.sync(row.during, row.during_batch)
    except Exception as exc:  # noqa: BLE001 - the row decides whether an error is right
        error = exc
    if row.outcome == "exact":
        assert error is None, f"{row.id}: expected the right data, the sync failed: {error!r}"
        assert result is not None and result.published, f"{row.id}: nothing was published: {result!r}"
        rig.assert_truth()
    else:
        assert error is not None, f"{row.id}: expected an error, the sync succeeded"
        message = str(error)
        assert repr(APP) in message or f"district {APP}" in message, f"{row.id}: no district in {message!r}"
        assert row.endpoint and row.endpoint in message, f"{row.id}: no {row.endpoint!r} in {message!r}"
        assert rig.published() == before, f"{row.id}: the published tables changed"
        assert set(rig.import_statuses(rig.run_id)) <= {"failed"}, (
            f"{row.id}: the import is not marked failed"
        )
    rig.clear_faults()
    rig.sync()
    rig.assert_truth()
    return RowOutcome(error, result)


# ------------------------------------------------------------------------------------------ Postgres


def terminate_backends(engine: sa.Engine, pid: int | None = None) -> int:
    """What a Postgres restart does to our connections: every backend of this database (or one) is killed.

    Only this test's own database is touched; the server itself keeps running for everyone else.
    """
    url = engine.url
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            where = "pid = :pid" if pid is not None else "datname = :db AND pid <> pg_backend_pid()"
            killed = conn.execute(
                sa.text(f"SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE {where}"),
                {"pid": pid, "db": url.database},
            ).scalar()
    finally:
        admin.dispose()
    return int(killed or 0)


def kill_connection_at(
    engine: sa.Engine, statement: str, inside: Callable[[], bool] = lambda: True
) -> list[int]:
    """Kill our own backend just before the first SQL statement matching ``statement`` runs (mid-transaction).

    Returns a list that receives the killed backend's pid, so a test can prove the kill happened.
    """
    pattern = re.compile(statement, re.IGNORECASE | re.DOTALL)
    killed: list[int] = []

    def before(conn: sa.Connection, cursor: Any, text: str, params: Any, context: Any, many: bool) -> None:
        if killed or not inside() or not pattern.search(text):
            return
        pid = cursor.connection.info.backend_pid
        killed.append(pid)
        terminate_backends(engine, pid)

    sa.event.listen(engine, "before_cursor_execute", before)
    return killed


# ------------------------------------------------------------------------------------------ fixture body


@dataclass
class FirstImports:
    """The fault table's first import, synced and checked once per database, copied into every rig that
    needs one (the second-import variant of each row).

    Every row's first import is the same sync of the same district (the row's fault comes after it), so
    syncing it once per worker is the same test: each rig gets a copy of the warehouse it left (a SQLite
    backup; a Postgres database created from it as a template) and the district as it was served, then
    applies the day's changes and its fault as before.
    """

    template: SimulatedDistrict
    folder: Path
    new_postgres_database: Callable[[], str]
    synced: dict[str, str] = field(default_factory=dict)  # "sqlite"/"postgres" -> the synced warehouse's URL

    def copy_into(self, url: str) -> None:
        """Make ``url``'s warehouse (an empty database, or a file not yet written) a copy of the first
        import."""
        kind = "postgres" if is_postgres_url(url) else "sqlite"
        if kind not in self.synced:
            self.synced[kind] = self._sync_first_import(kind)
        source = self.synced[kind]
        if kind == "sqlite":  # SQLite's backup API: a consistent copy whatever its write-ahead log holds
            with (
                closing(sqlite3.connect(_sqlite_path(source))) as read,
                closing(sqlite3.connect(_sqlite_path(url))) as write,
            ):
                read.backup(write)
            return
        target = sa.engine.make_url(url)
        admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:  # the test's database is brand-new and unused: replace it
                conn.execute(sa.text(f'DROP DATABASE "{target.database}"'))
                conn.execute(
                    sa.text(
                        f'CREATE DATABASE "{target.database}" '
                        f'TEMPLATE "{sa.engine.make_url(source).database}"'
                    )
                )
        finally:
            admin.dispose()

    def _sync_first_import(self, kind: str) -> str:
        url = (
            self.new_postgres_database()
            if kind == "postgres"
            else f"sqlite:///{self.folder / 'first-import.sqlite'}"
        )
        factory = RigFactory(self.template, self.folder, url)
        try:
            rig = factory()
            rig.sync()
            rig.assert_truth()
        finally:
            factory.close()  # no connection may stay open on a Postgres template
        return url


def _sqlite_path(url: str) -> Path:
    database = sa.engine.make_url(url).database
    assert database, url
    return Path(database)


@dataclass
class RigFactory:
    template: SimulatedDistrict
    tmp_path: Path
    url: str
    first_imports: FirstImports | None = None
    started: list[SimulatorServer] = field(default_factory=list)
    rigs: list[FaultRig] = field(default_factory=list)

    def __call__(self, **settings: Any) -> FaultRig:
        """A rig with an empty warehouse: its first sync is a first import."""
        rig = self._rig(settings)
        rig.warehouse.create_schema()
        create_control_schema(rig.engine)  # pause state and the email ledger, as the Dagster resource does
        return rig

    def after_first_import(self, **settings: Any) -> FaultRig:
        """A rig whose warehouse already holds the district's first import (run ``fault-run-1``), published
        from the district exactly as the rig's simulator serves it."""
        assert self.first_imports is not None, "no first imports to copy from"
        assert not self.rigs, "the copy replaces the rig's warehouse: take it first"
        self.first_imports.copy_into(self.url)
        rig = self._rig(settings)
        rig.runs = 1
        assert rig.import_statuses(rig.run_id) == ["published"], "the copy holds the first import"
        return rig

    def _rig(self, settings: dict[str, Any]) -> FaultRig:
        server = SimulatorServer(
            [Tenant(APP, CLIENT_ID, CLIENT_SECRET, copy.deepcopy(self.template))]
        ).start()
        self.started.append(server)
        warehouse = HookedWarehouse(self.url)
        folder = self.tmp_path / f"rig-{uuid.uuid4().hex[:6]}"
        folder.mkdir()
        rig = FaultRig(server, warehouse, folder / "districts.yaml", {}, dict(settings))
        warehouse.rig = rig
        self.rigs.append(rig)
        return rig

    def close(self) -> None:
        for server in self.started:
            server.stop()
        for rig in self.rigs:
            rig.warehouse.dispose()


def rig_factory(
    template: SimulatedDistrict, tmp_path: Path, url: str, first_imports: FirstImports | None = None
) -> Iterator[RigFactory]:
    factory = RigFactory(template, tmp_path, url, first_imports)
    try:
        yield factory
    finally:
        factory.close()
