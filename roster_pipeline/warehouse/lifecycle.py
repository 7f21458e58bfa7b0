"""An import's life before it publishes: opened for a district and school year, fed batches of records
per resource into staging, then held, failed, discarded or left for the publish path.

An import is the unit the rest of the product reasons about.  Its status moves ``running`` → ``staged``
→ (``held`` | ``dry_run`` | ``published`` | ``failed`` | ``discarded``, later ``undone``).  Every method
opens its own short transaction, and one that changes an import's status locks its ``import_runs`` row
first, so the object can be shared by Dagster steps running in separate processes against one database.
Each import stages into tables of its own (``staging.py``): no statement of one import reads, writes,
analyses or locks anything another import touches.  The publish path (``publishing.py``) and the reports
(``reporting.py``) build on this class; ``Warehouse`` (``core.py``) is the facade the rest of the product
uses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from roster_pipeline.pipeline.run_tags import SYNC_MODES, SyncMode
from roster_pipeline.records.catalogue import RESOURCES, Resource, resource

from . import archive, staging
from . import diff as sql
from .engine import make_engine, resolve_url
from .errors import WarehouseError
from .load import build_rows, copy_rows
from .published import latest_published_import_id
from .schema import import_resource_counts, import_runs
from .setup import create_schema

RowBuilder = Callable[[Sequence[Mapping[str, Any]]], list[tuple[Any, ...]]]
OPEN_STATUSES = ("running", "staged")  # still receiving records / waiting for checks


@dataclass(frozen=True)
class ImportRun:
    import_id: int
    district_id: str
    run_id: str | None
    school_year: int
    sync_mode: SyncMode  # the table's check constraint admits no other
    status: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    hold_reason: str | None = None  # why the checks held it (status 'held'; kept after approve/reject)
    overridden_by: str | None = None  # who published it despite failed checks (approve)
    override_reason: str | None = None
    overridden_at: datetime | None = None
    additions_only: bool = False  # rollover window: publishing adds and updates, never deletes
    undone_by: str | None = None  # status 'undone': who rolled the district back to before this import
    undone_at: datetime | None = None
    undo_note: str | None = None
    undo_forced: bool = False  # the undo went through although its checks failed (the reviewer's force)


def utc_now() -> datetime:
    return datetime.now(UTC)


def first_cause(recorded: str | None, error: str, limit: int = 10_000) -> str:
    """The error to record: the first cause stays, a later different one is appended after it."""
    if not recorded:
        return error[:limit]
    if error in recorded:
        return recorded
    return f"{recorded}\nthen: {error}"[:limit]


class ImportLifecycle:
    """Opening, loading and closing imports. ``url=None``: ``ROSTER_DATABASE_URL``, else the embedded SQLite file."""

    def __init__(self, url: str | None = None, engine: sa.Engine | None = None) -> None:
        self.url = resolve_url(url) if engine is None else engine.url.render_as_string(hide_password=False)
        self.engine: sa.Engine = engine if engine is not None else make_engine(self.url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.engine.url.render_as_string(hide_password=True)!r})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_schema(self) -> int:
        """Create missing tables and record the schema version; idempotent."""
        return create_schema(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    def begin_import(
        self, district_id: str, run_id: str | None, school_year: int, sync_mode: str = "full"
    ) -> int:
        """Open an import; a school year older than the district's current one is refused (PastSchoolYearError)."""
        if sync_mode not in SYNC_MODES:
            raise ValueError(f"sync_mode must be one of {SYNC_MODES}, got {sync_mode!r}")
        with self.engine.begin() as conn:
            archive.refuse_past_year(conn, district_id, school_year)
            result = conn.execute(
                import_runs.insert()
                .values(
                    district_id=district_id,
                    run_id=run_id,
                    school_year=int(school_year),
                    sync_mode=sync_mode,
                    status="running",
                    started_at=utc_now(),
                )
                .returning(import_runs.c.import_id)
            )
            import_id = int(result.scalar_one())
            staging.create(conn, import_id)  # the import's own staging tables, with the row that names them
            return import_id

    def get_import(self, import_id: int) -> ImportRun:
        with self.engine.connect() as conn:
            return self._import(conn, import_id)

    def import_for_run(self, district_id: str, run_id: str) -> int | None:
        """The latest import a Dagster run opened for a district, if any."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.max(import_runs.c.import_id)).where(
                    import_runs.c.district_id == district_id, import_runs.c.run_id == run_id
                )
            ).scalar()

    def latest_import(self, district_id: str) -> ImportRun | None:
        """The district's most recent import whatever became of it (district_status shows its outcome)."""
        query = sa.select(sa.func.max(import_runs.c.import_id)).where(
            import_runs.c.district_id == district_id
        )
        with self.engine.connect() as conn:
            import_id = conn.execute(query).scalar()
            return None if import_id is None else self._import(conn, import_id)

    def last_published_import(
        self,
        district_id: str,
        sync_mode: str | None = None,
        *,
        school_year: int | None = None,
        before_import_id: int | None = None,
    ) -> ImportRun | None:
        """The latest published import (of a mode, of a school year, before an import): what the published
        rows reflect, and where a delta counts from."""
        with self.engine.connect() as conn:
            import_id = latest_published_import_id(
                conn,
                district_id,
                school_year=school_year,
                before_import_id=before_import_id,
                sync_mode=sync_mode,
            )
            return None if import_id is None else self._import(conn, import_id)

    def set_additions_only(self, import_id: int, additions_only: bool = True) -> None:
        """Record that the import runs in a rollover additions_only window (before anything is staged):
        its diff and publish then never delete (see ``classify.withhold_deletions``)."""
        with self.engine.begin() as conn:
            run = self._import(conn, import_id, lock=True)
            if run.status not in OPEN_STATUSES:
                raise WarehouseError(
                    f"import {import_id} is {run.status}; its deletion policy can no longer change"
                )
            conn.execute(
                import_runs.update()
                .where(import_runs.c.import_id == import_id)
                .values(additions_only=additions_only)
            )

    def current_school_year(self, district_id: str) -> int | None:
        """The school year of the district's latest published import; older years are archived."""
        with self.engine.connect() as conn:
            return archive.current_school_year(conn, district_id)

    def school_years(self, district_id: str) -> dict[int, dict[str, int]]:
        """{school_year: {year-scoped resource: alive rows}}, archived years included."""
        with self.engine.connect() as conn:
            return archive.school_years(conn, district_id)

    def mark_staged(self, import_id: int) -> None:
        """Every resource is staged; the import now waits for its checks."""
        self._set_status(import_id, "staged", finished=False, allowed=OPEN_STATUSES)

    def hold_import(self, import_id: int, reason: str) -> None:
        """Checks failed: keep the snapshot in staging for the admin (approve → ``publish(override=True)``,
        reject → ``discard_import``). Holding again only updates the reason."""
        with self.engine.begin() as conn:
            run = self._import(conn, import_id, lock=True)
            if run.status not in (*OPEN_STATUSES, "held"):
                raise WarehouseError(
                    f"import {import_id} is {run.status}; only running/staged imports can be held"
                )
            conn.execute(
                import_runs.update()
                .where(import_runs.c.import_id == import_id)
                .values(status="held", hold_reason=reason[:10_000])
            )

    def mark_dry_run(self, import_id: int) -> None:
        """Fetched and checked for preview only: staging is kept for the diff, publish always refuses."""
        self._set_status(import_id, "dry_run", allowed=(*OPEN_STATUSES, "dry_run"))

    def imports_from(self, first_import_id: int | None, started_since: datetime) -> list[ImportRun]:
        """Every import from ``first_import_id`` on (the control loop's cursor) or, without one, every import
        started since ``started_since`` (a first tick looks back, never over the whole history)."""
        query = sa.select(import_runs).order_by(import_runs.c.import_id)
        if first_import_id is not None:
            query = query.where(import_runs.c.import_id >= first_import_id)
        else:
            query = query.where(import_runs.c.started_at >= started_since)
        with self.engine.connect() as conn:
            return [ImportRun(**row) for row in conn.execute(query).mappings()]

    def undone_since(self, since: datetime) -> list[ImportRun]:
        """The imports undone since ``since``, oldest first (each gets one Import Undone email)."""
        query = (
            sa.select(import_runs)
            .where(import_runs.c.status == "undone", import_runs.c.undone_at >= since)
            .order_by(import_runs.c.import_id)
        )
        with self.engine.connect() as conn:
            return [ImportRun(**row) for row in conn.execute(query).mappings()]

    def held_import(self, district_id: str) -> ImportRun | None:
        """The district's latest held import (the one waiting for the admin), if any."""
        with self.engine.connect() as conn:
            import_id = conn.execute(
                sa.select(sa.func.max(import_runs.c.import_id)).where(
                    import_runs.c.district_id == district_id, import_runs.c.status == "held"
                )
            ).scalar()
            return None if import_id is None else self._import(conn, import_id)

    def is_first_import(self, district_id: str) -> bool:
        """Nothing was ever published for the district (change thresholds do not apply to its first import)."""
        return self.last_published_import(district_id) is None

    def fail_import(self, import_id: int, error: str) -> None:
        """Mark the import failed. Its staging rows are kept until the control sensor settles the failed
        run (``close_failed_import``) or a review discards them.

        The first recorded cause stays first: a later failure (often only a consequence of the first,
        such as a step refused because the import already failed) is appended, never replaces it."""
        self._set_status(import_id, "failed", error=error)

    def close_failed_import(self, import_id: int, cause: str) -> bool:
        """The import's run is over (failed, canceled, or died): fail the import if it is still open,
        keeping any cause recorded first, and drop its staging rows, in one transaction.

        Returns True when the import was still open (its run died without saying so)."""
        with self.engine.begin() as conn:
            run = self._import(conn, import_id, lock=True)
            if run.status not in (*OPEN_STATUSES, "failed"):
                return False
            self._clear_staging(conn, import_id)
            if run.status == "failed":
                return False
            conn.execute(
                import_runs.update()
                .where(import_runs.c.import_id == import_id)
                .values(status="failed", error=first_cause(run.error, cause), finished_at=utc_now())
            )
            return True

    def discard_import(self, import_id: int) -> None:
        """Drop an unpublished import's staging rows; the published tables are untouched.

        Its rejects and field changes are kept: they explain why it was discarded."""
        with self.engine.begin() as conn:
            run = self._import(conn, import_id, lock=True)
            if run.status in ("published", "undone"):
                raise WarehouseError(f"import {import_id} is already {run.status}; it cannot be discarded")
            self._clear_staging(conn, import_id)
            conn.execute(
                import_runs.update()
                .where(import_runs.c.import_id == import_id)
                .values(status="discarded", finished_at=run.finished_at or utc_now())
            )

    def stage(self, import_id: int, resource_name: str, records: Sequence[Mapping[str, Any]]) -> int:
        """Load one batch into staging (COPY on Postgres). An empty batch still marks the resource staged."""
        return self.stage_rows(import_id, resource_name, self.row_builder(import_id, resource_name)(records))

    def row_builder(self, import_id: int, resource_name: str) -> RowBuilder:
        """The function that turns a batch of records into this import's staging rows (flatten + hash).

        Separate from ``stage_rows`` so a sync can build page n+1's rows while page n is being loaded
        (``warehouse.writer``); refuses an import that can no longer receive records."""
        tables = staging.for_loading(import_id, resource(resource_name).name)
        run = self.get_import(import_id)
        if run.status not in OPEN_STATUSES:
            raise WarehouseError(f"import {import_id} is {run.status}; it cannot receive records")
        return functools.partial(build_rows, tables, import_id, run.district_id, run.school_year)

    def stage_rows(self, import_id: int, resource_name: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """COPY rows made by ``row_builder`` into the import's staging table, in a transaction of its own."""
        res = resource(resource_name)
        tables = staging.for_loading(import_id, res.name)
        with self.engine.begin() as conn:
            run = self._import(conn, import_id)
            if run.status not in OPEN_STATUSES:
                raise WarehouseError(f"import {import_id} is {run.status}; it cannot receive records")
            copy_rows(conn, tables, rows)
            self._bump_counts(conn, import_id, res.name, batches=1, fetched=len(rows))
        return len(rows)

    def record_fetch_stats(
        self, import_id: int, resource_name: str, pages: int, seconds: float, dropped_duplicates: int = 0
    ) -> None:
        """Record a resource's fetch figures, once per pull.

        ``dropped_duplicates``: identical repeats the client received but did not stage (paging overlap).
        They count as fetched, so the diff reports them as ``duplicates`` beside repeats found in staging.
        """
        res = resource(resource_name)
        c = import_resource_counts.c
        with self.engine.begin() as conn:
            self._ensure_counts_row(conn, import_id, res.name)
            conn.execute(
                import_resource_counts.update()
                .where(c.import_id == import_id, c.resource == res.name)
                .values(pages=int(pages), seconds=float(seconds), fetched=c.fetched + int(dropped_duplicates))
            )

    def analyze_staging(
        self, import_id: int, resources: Sequence[str] | None = None, only_new: bool = True
    ) -> None:
        """Postgres: give the import's staging tables planner statistics, in a short transaction of its own.

        ``only_new``: only tables never analysed (a cheap catalog probe when there is nothing to do).
        Only this import's own tables are analysed, and never inside a long transaction (see ``staging``)."""
        if self.dialect != "postgresql":
            return
        with self.engine.begin() as conn:
            staging.analyze(conn, import_id, resources, only_new=only_new)

    def resource_counts(self, import_id: int) -> dict[str, dict[str, Any]]:
        """The import_resource_counts rows of an import, by resource."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(import_resource_counts).where(import_resource_counts.c.import_id == import_id)
            ).mappings()
            return {row["resource"]: dict(row) for row in rows}

    def _import(self, conn: sa.Connection, import_id: int, lock: bool = False) -> ImportRun:
        query = sa.select(import_runs).where(import_runs.c.import_id == import_id)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            raise WarehouseError(f"unknown import {import_id}")
        return ImportRun(**row)

    def _set_status(
        self,
        import_id: int,
        status: str,
        error: str | None = None,
        finished: bool = True,
        allowed: Sequence[str] | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            run = self._import(conn, import_id, lock=True)
            if run.status in ("published", "discarded", "undone") or (
                allowed is not None and run.status not in allowed
            ):
                raise WarehouseError(f"import {import_id} is {run.status}; it cannot become {status}")
            values: dict[str, Any] = {"status": status}
            if error is not None:
                values["error"] = first_cause(run.error, error)
            if finished:
                values["finished_at"] = utc_now()
            conn.execute(import_runs.update().where(import_runs.c.import_id == import_id).values(**values))

    @staticmethod
    def _scope(run: ImportRun) -> sql.Scope:
        """An additions_only import infers no deletions from absence, whatever its sync mode."""
        full = run.sync_mode == "full" and not run.additions_only
        return sql.Scope(run.import_id, run.district_id, run.school_year, full=full)

    def _staged_resources(self, conn: sa.Connection, import_id: int) -> list[Resource]:
        staged = set(
            conn.execute(
                sa.select(import_resource_counts.c.resource).where(
                    import_resource_counts.c.import_id == import_id, import_resource_counts.c.batches > 0
                )
            ).scalars()
        )
        return [r for r in RESOURCES if r.name in staged]

    def _ensure_counts_row(self, conn: sa.Connection, import_id: int, resource_name: str) -> None:
        exists = conn.execute(
            sa.select(sa.literal(1)).where(
                import_resource_counts.c.import_id == import_id,
                import_resource_counts.c.resource == resource_name,
            )
        ).first()
        if exists is None:
            conn.execute(import_resource_counts.insert().values(import_id=import_id, resource=resource_name))

    def _bump_counts(
        self, conn: sa.Connection, import_id: int, resource_name: str, batches: int, fetched: int
    ) -> None:
        self._ensure_counts_row(conn, import_id, resource_name)
        c = import_resource_counts.c
        conn.execute(
            import_resource_counts.update()
            .where(c.import_id == import_id, c.resource == resource_name)
            # rows staged after a classification pass have none: the next reader classifies again
            .values(batches=c.batches + batches, fetched=c.fetched + fetched, classified_watermark=None)
        )

    def _clear_staging(self, conn: sa.Connection, import_id: int) -> None:
        """Drop the import's own staging tables (in the caller's transaction: atomic with its status)."""
        staging.drop(conn, import_id)
