"""The Warehouse facade: imports, staging, diff and the one-transaction publish.

An import is the unit the rest of the product reasons about: it is opened for a district and school
year, receives batches of records per resource into staging, is diffed and checked, and is then either
published (all its resources in ONE transaction) or failed/discarded — the published tables never see
a partial snapshot.  An import whose checks fail is ``held`` (its snapshot stays in staging for the
admin's review: approve publishes it with ``override=True``, reject discards it); a ``dry_run`` import
is fetched, checked and diffed but can never be published.  Records failing a check are quarantined
(``rejected_records``): never published, and never the cause of a deletion.  Every method opens its own short transaction, so the object can be shared by
Dagster steps running in separate processes against the same database.

Districts side by side: each import stages into tables of its own (``staging.py``), so no statement of
one import reads, writes, analyses or locks anything another import touches, except rows of the
control tables keyed by its own import id and the published rows of its own district.  Locks are taken
in one order: the import's ``import_runs`` row (``SELECT ... FOR UPDATE``), then, in publish only, the
district's advisory lock (one publish per district at a time), then the district's published rows and
the import's own staging tables.  A classification pass (``classify.py``) locks the resource's
``import_resource_counts`` row, and never waits on the district lock.

Classified once: each resource's staged rows are classified against the published rows in one SQL pass
(``classify``; normally as the resource finishes staging, via ``diff``), and the counts, summaries, field
diff and publish read that classification instead of joining staging with the published rows again.
The pass runs again only when it would be wrong: more rows staged, or the district's published rows
changed since (checked again inside the publish transaction, under the district lock).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from roster_pipeline.pipeline.run_tags import SYNC_MODES, SyncMode
from roster_pipeline.records.catalogue import RESOURCES, Resource, resource
from roster_pipeline.records.rejects import Reject

from . import archive, classify, field_diff, purge, quarantine, staging, summaries, undo
from . import diff as sql
from .counts import ChangeCounts
from .engine import make_engine, resolve_url
from .errors import WarehouseError
from .load import build_rows, copy_rows
from .locks import lock_district_writes
from .published import latest_published_import_id
from .schema import STAGED_STATUSES, TABLES, import_resource_counts, import_runs, rejected_records
from .setup import create_schema

log = logging.getLogger(__name__)

#: A publish that adds, updates or deletes at least this many rows of a resource refreshes the planner
#: statistics of its published table (``Warehouse._refresh_published_statistics``).
ANALYZE_AFTER_ROWS = 10_000
RowBuilder = Callable[[Sequence[Mapping[str, Any]]], list[tuple[Any, ...]]]
OPEN_STATUSES = ("running", "staged")  # still receiving records / waiting for checks
# statuses whose snapshot is still in staging (it can be diffed, summarised, reviewed)


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


def _now() -> datetime:
    return datetime.now(UTC)


def first_cause(recorded: str | None, error: str, limit: int = 10_000) -> str:
    """The error to record: the first cause stays, a later different one is appended after it."""
    if not recorded:
        return error[:limit]
    if error in recorded:
        return recorded
    return f"{recorded}\nthen: {error}"[:limit]


class Warehouse:
    """The roster warehouse. ``url=None``: ``ROSTER_DATABASE_URL``, else the embedded SQLite file."""

    def __init__(self, url: str | None = None, engine: sa.Engine | None = None) -> None:
        self.url = resolve_url(url) if engine is None else engine.url.render_as_string(hide_password=False)
        self.engine: sa.Engine = engine if engine is not None else make_engine(self.url)

    def __repr__(self) -> str:
        return f"Warehouse({self.engine.url.render_as_string(hide_password=True)!r})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_schema(self) -> int:
        """Create missing tables and record the schema version; idempotent."""
        return create_schema(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- imports ---------------------------------------------------------------------------------

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
                    started_at=_now(),
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
                .values(status="failed", error=first_cause(run.error, cause), finished_at=_now())
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
                .values(status="discarded", finished_at=run.finished_at or _now())
            )

    # -- staging -----------------------------------------------------------------------------------

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

    # -- diff and publish ----------------------------------------------------------------------

    def diff(self, import_id: int, resource_name: str) -> ChangeCounts:
        """What publishing would do to this resource, computed in SQL; nothing published changes.

        Called once a resource is loaded (``sync.stage_resource``): its staging table is analysed, then
        classified (``classify``), each in a short transaction of its own; the counts are one aggregate
        over the classified rows."""
        res = resource(resource_name)
        self.analyze_staging(import_id, [res.name], only_new=False)
        self.classify(import_id, [res.name])
        with self.engine.begin() as conn:
            run = self._import(conn, import_id)
            return self._diff(conn, run, res)

    def classify(self, import_id: int, resources: Sequence[str] | None = None) -> list[str]:
        """Run the classification pass (``warehouse.classify``) for each staged resource of the import (or
        ``resources``) that has none or a stale one, each in a short transaction of its own; then, on
        Postgres, ANALYZE the tables classified (in a transaction of its own: the planner needs to know
        how few rows changed).  Returns the resources classified.  Readers classify on demand anyway; this
        keeps the pass out of their transactions, and lets the caller time it."""
        done: list[str] = []
        with self.engine.connect() as conn:
            run = self._import(conn, import_id)
            if run.status not in STAGED_STATUSES:
                return done
            names = (
                [r.name for r in self._staged_resources(conn, import_id)]
                if resources is None
                else list(resources)
            )
        for name in names:
            res = resource(name)
            with self.engine.begin() as conn:
                run = self._import(conn, import_id)
                if self._ensure_classified(conn, run, res):
                    done.append(res.name)
        if done:
            self.analyze_staging(import_id, done, only_new=False)
        return done

    def publish(
        self,
        import_id: int,
        override: bool = False,
        overridden_by: str | None = None,
        override_reason: str | None = None,
    ) -> dict[str, ChangeCounts]:
        """Publish every staged resource of the import in ONE transaction; any error publishes nothing.

        A ``held`` import (its checks failed) publishes only with ``override=True`` — the admin's approve —
        and the override is recorded on the import (who, why, when).  ``dry_run``, ``failed``,
        ``discarded`` and ``published`` imports never publish.  Quarantined records are left out.
        """
        now = _now()
        results: dict[str, ChangeCounts] = {}
        self.analyze_staging(import_id)
        if self.get_import(import_id).status in (*OPEN_STATUSES, "held"):
            # A stale classification (the published rows changed since: an approve days later) is redone
            # here, outside the publish transaction; the check below, under the district lock, catches
            # a publish, undo or purge that slips in between.
            self.classify(import_id)
        with self.engine.begin() as conn:
            run = self._import(conn, import_id, lock=True)
            if run.status == "held" and not override:
                raise WarehouseError(
                    f"import {import_id} is held (its checks failed: {run.hold_reason}); "
                    "publish it only as an approve, with override=True"
                )
            if run.status not in (*OPEN_STATUSES, "held"):
                raise WarehouseError(
                    f"import {import_id} is {run.status}; only running/staged imports publish"
                )
            lock_district_writes(conn, run.district_id)  # one publish (undo, purge) per district at a time
            if conn.dialect.name == "postgresql":  # hash joins over a whole district (see diff.deduplicate)
                conn.execute(sa.text("SET LOCAL work_mem = '128MB'"))
            # An old school year is frozen after rollover; a newer one archives the years before it.
            current_year = archive.refuse_past_year(
                conn, run.district_id, run.school_year, exclude_import=import_id
            )
            scope = self._scope(run)
            rejected = quarantine.distinct_records(conn, import_id)
            for res in self._staged_resources(conn, import_id):
                tables = staging.for_import(import_id, res.name)
                counts = self._diff(conn, run, res)  # re-classifies if the published rows changed since
                updated, inserted, vanished = sql.apply_changes(conn, tables, scope, now, counts)
                expected_updates = counts.updated + counts.readded + (counts.deleted - vanished)
                expected_inserts = counts.added - counts.readded + counts.new_tobedeleted
                if (updated, inserted) != (expected_updates, expected_inserts):
                    raise WarehouseError(
                        f"{res.name}: publish touched {updated} updated/{inserted} inserted rows but the diff "
                        f"expected {expected_updates}/{expected_inserts}; rolled back"
                    )
                conn.execute(
                    import_resource_counts.update()
                    .where(
                        import_resource_counts.c.import_id == import_id,
                        import_resource_counts.c.resource == res.name,
                    )
                    .values(
                        duplicates=counts.duplicates,
                        added=counts.added,
                        updated=counts.updated,
                        deleted=counts.deleted,
                        unchanged=counts.unchanged,
                        tobedeleted=counts.tobedeleted,
                        rejected=rejected.get(res.name, 0),
                    )
                )
                results[res.name] = counts
            if current_year is not None and run.school_year > current_year:
                archive.archive_before(conn, run.district_id, run.school_year, now)
            self._clear_staging(conn, import_id)
            values: dict[str, Any] = {"status": "published", "finished_at": _now(), "error": None}
            if run.status == "held":  # only a held import had thresholds to override
                values.update(
                    overridden_by=overridden_by, override_reason=override_reason, overridden_at=_now()
                )
            conn.execute(import_runs.update().where(import_runs.c.import_id == import_id).values(**values))
        self._refresh_published_statistics(results)
        return results

    def _refresh_published_statistics(self, results: Mapping[str, ChangeCounts]) -> None:
        """Postgres: ANALYZE the published tables a publish changed by many rows, each in a short
        transaction of its own, after the commit.

        Right after a district's first large import the published tables have no statistics, and the
        planner takes them for one row: measured, the next import's vanished anti-join ran 6 minutes and
        its school summary over 10 (seconds once analysed).  Autovacuum gets there, but not before the
        next scheduled run.  ANALYZE's lock conflicts only with another ANALYZE or VACUUM of the same table
        (another district's publish, autovacuum): waiting for it is pointless, its statistics will do, so
        a short lock_timeout skips instead."""
        if self.dialect != "postgresql":
            return
        changed = [
            name for name, c in results.items() if c.added + c.updated + c.deleted >= ANALYZE_AFTER_ROWS
        ]
        for name in changed:
            table = self.engine.dialect.identifier_preparer.quote(TABLES[name].published.name)
            try:
                with self.engine.begin() as conn:
                    conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                    conn.exec_driver_sql(f"ANALYZE {table}")
            except sa.exc.OperationalError as exc:  # another ANALYZE of the table is under way
                log.info("ANALYZE %s skipped: %s", table, str(exc).splitlines()[0])

    # -- purging data a district no longer lets us keep ----------------------------------------------

    def purge_resource(
        self, district_id: str, resource_name: str, reason: str, import_id: int | None = None
    ) -> purge.PurgeCounts:
        """Hard-delete every row of one resource for one district (all tables that hold it), recorded in
        ``data_purges`` when anything was removed; a no-op when there is nothing left. See ``purge``."""
        res = resource(resource_name)
        with self.engine.begin() as conn:
            return purge.purge_resource(conn, district_id, res.name, import_id, reason, _now())

    def purges(self, district_id: str) -> list[dict[str, Any]]:
        """The district's recorded purges (``data_purges`` rows), oldest first."""
        with self.engine.connect() as conn:
            return purge.purges(conn, district_id)

    def undo_last_import(
        self,
        district_id: str,
        *,
        undone_by: str,
        note: str | None = None,
        import_id: int | None = None,
        check: undo.UndoCheck | None = None,
        force: bool = False,
        preview: bool = False,
    ) -> undo.UndoResult:
        """Roll the district back to exactly what was published before its latest published import, in ONE
        transaction; the import becomes ``undone``.  ``check`` sees the result before the commit and returns
        failures (refused unless ``force``); ``preview`` rolls back.  See ``warehouse.undo``."""
        return undo.undo_last_import(
            self.engine,
            district_id,
            undone_by=undone_by,
            note=note,
            import_id=import_id,
            check=check,
            force=force,
            preview=preview,
        )

    def undo_counts(self, import_id: int) -> dict[str, undo.ResourceUndo]:
        """What undoing the import did, per resource (empty unless it was undone)."""
        with self.engine.connect() as conn:
            return undo.undo_counts(conn, import_id)

    # -- quarantine ------------------------------------------------------------------------------------

    def record_rejects(self, import_id: int, rejects: Sequence[Reject]) -> int:
        """Store failed checks of records that were kept out of staging (COPY on Postgres). Returns rows."""
        if not rejects:
            return 0
        with self.engine.begin() as conn:
            run = self._import(conn, import_id)
            self._require_unpublished(run)
            quarantine.insert_rows(conn, quarantine.build_rows(import_id, run.district_id, rejects, _now()))
        return len(rejects)

    def reject_staged(self, import_id: int, rejects: Sequence[Reject]) -> int:
        """Quarantine records found bad after staging (referential checks); returns staging rows removed.

        Each Reject is stored (with the staged record as ``raw`` when it carries none), and the staged rows
        of every sourcedId with an *error* reject are deleted from the import's staging, in the same
        transaction, so they can never be published.  Warnings are only stored.
        """
        if not rejects:
            return 0
        removed = 0
        with self.engine.begin() as conn:
            run = self._import(conn, import_id, lock=True)
            self._require_unpublished(run)
            completed = quarantine.with_staged_raw(conn, import_id, rejects)
            quarantine.insert_rows(conn, quarantine.build_rows(import_id, run.district_id, completed, _now()))
            for name in dict.fromkeys(resource(r.resource).name for r in rejects if r.severity == "error"):
                removed += self._purge(conn, import_id, resource(name))
        return removed

    def rejects(self, import_id: int, severity: str | None = None, limit: int | None = None) -> list[Reject]:
        """The import's rejects (errors and warnings, or one ``severity``), in recording order."""
        with self.engine.connect() as conn:
            return quarantine.read(conn, import_id, severity, limit)

    def reject_counts(self, import_id: int, severity: str | None = None) -> dict[str, dict[str, int]]:
        """{resource: {check_name: rejects}} — failed checks, a record failing two checks counts twice."""
        with self.engine.connect() as conn:
            return quarantine.counts_by_check(conn, import_id, severity)

    def rejected_record_counts(self, import_id: int, severity: str = "error") -> dict[str, int]:
        """{resource: distinct records with a reject of ``severity``} (errors: the quarantined records)."""
        with self.engine.connect() as conn:
            return quarantine.distinct_records(conn, import_id, severity)

    # -- summaries and the field diff (for threshold checks, review and emails) ----------------------

    def change_summary(self, import_id: int) -> pd.DataFrame:
        """Per resource (whole catalogue, in order): published_before, fetched, added, updated, deleted,
        unchanged, tobedeleted, rejected and the %s the threshold checks compare (see ``summaries``)."""
        self.analyze_staging(import_id)
        self.classify(import_id)
        with self.engine.begin() as conn:
            run, scope = self._staged_import(conn, import_id)
            counts = {res.name: self._diff(conn, run, res) for res in self._staged_resources(conn, import_id)}
            return summaries.change_summary(conn, scope, counts, quarantine.distinct_records(conn, import_id))

    def school_summary(self, import_id: int) -> pd.DataFrame:
        """Per (school, resource) for users and enrollments: published_before, after, drop, drop_pct."""
        self.analyze_staging(import_id)
        self.classify(import_id)
        with self.engine.begin() as conn:
            run, scope = self._staged_import(conn, import_id)
            staged = {res.name for res in self._staged_resources(conn, import_id)}
            for name in staged & set(summaries.SCHOOL_RESOURCES):
                self._ensure_classified(conn, run, resource(name))
            return summaries.school_summary(conn, scope, staged)

    def build_field_diff(self, import_id: int) -> int:
        """(Re)build the import's rows in ``import_field_changes``; returns how many were written."""
        total = 0
        self.analyze_staging(import_id)
        self.classify(import_id)
        with self.engine.begin() as conn:
            run, scope = self._staged_import(conn, import_id)
            field_diff.clear(conn, import_id)
            for res in self._staged_resources(conn, import_id):
                expected = self._diff(conn, run, res)  # the classification's counts (classified if stale)
                if expected.changed:
                    total += field_diff.build_resource(
                        conn, staging.for_import(import_id, res.name), scope, expected
                    )
        return total

    def field_changes(self, import_id: int, limit: int | None = None) -> pd.DataFrame:
        """The per-record, per-field diff built by ``build_field_diff`` (columns: import_id, district_id,
        resource, sourced_id, change, field, old_value, new_value)."""
        with self.engine.connect() as conn:
            return field_diff.read(conn, import_id, limit)

    def import_summary(self, import_id: int) -> dict[str, Any]:
        """Everything recorded about an import, for reports: the run, counts per resource, rejects."""
        with self.engine.connect() as conn:
            run = self._import(conn, import_id)
        return {
            "import": asdict(run),
            "resources": self.resource_counts(import_id),
            "reject_counts": self.reject_counts(import_id),
            "rejected_records": self.rejected_record_counts(import_id),
            "warning_records": self.rejected_record_counts(import_id, severity="warning"),
        }

    # -- reading -------------------------------------------------------------------------------------

    def current_counts(self, district_id: str, school_year: int | None = None) -> dict[str, int]:
        """Not-deleted published rows per resource: the current school year (year-scoped rows of archived
        years left out, as in the ``current_<resource>`` views), or ``school_year``'s rows if given."""
        counts: dict[str, int] = {}
        with self.engine.connect() as conn:
            for res in RESOURCES:
                p = TABLES[res.name].published
                query = (
                    sa.select(sa.func.count())
                    .select_from(p)
                    .where(p.c.district_id == district_id, p.c.deleted_at.is_(None))
                )
                if res.year_scoped and school_year is not None:
                    query = query.where(p.c.school_year == school_year)
                elif res.year_scoped:
                    query = query.where(p.c.archived_at.is_(None))
                counts[res.name] = int(conn.execute(query).scalar_one())
        return counts

    def published_before(self, import_id: int) -> dict[str, int]:
        """{resource: alive published rows in the import's scope before it was published}: the base of the
        threshold checks' %s (``change_summary``'s ``published_before``), for full and delta imports alike,
        also after the publish (see ``summaries.published_before_import``)."""
        with self.engine.connect() as conn:
            run = self._import(conn, import_id)
            return summaries.published_before_import(conn, import_id, self._scope(run))

    def resource_counts(self, import_id: int) -> dict[str, dict[str, Any]]:
        """The import_resource_counts rows of an import, by resource."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(import_resource_counts).where(import_resource_counts.c.import_id == import_id)
            ).mappings()
            return {row["resource"]: dict(row) for row in rows}

    # -- internals -----------------------------------------------------------------------------------

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
                values["finished_at"] = _now()
            conn.execute(import_runs.update().where(import_runs.c.import_id == import_id).values(**values))

    def _require_unpublished(self, run: ImportRun) -> None:
        if run.status in ("published", "discarded", "undone"):
            raise WarehouseError(
                f"import {run.import_id} is {run.status}; its records can no longer be rejected"
            )

    def _purge(self, conn: sa.Connection, import_id: int, res: Resource) -> int:
        """Withdraw quarantined records from staging and count them on the resource's counts row, which
        also records the latest error reject withdrawn (``purged_reject_id``: see ``_ensure_classified``)."""
        removed = sql.purge_quarantined(conn, staging.for_import(import_id, res.name), import_id)
        if removed:
            self._ensure_counts_row(conn, import_id, res.name)
        c = import_resource_counts.c
        conn.execute(
            import_resource_counts.update()
            .where(c.import_id == import_id, c.resource == res.name)
            .values(
                quarantined=c.quarantined + removed,
                purged_reject_id=self._latest_error_reject(conn, import_id, res),
            )
        )
        return removed

    @staticmethod
    def _latest_error_reject(conn: sa.Connection, import_id: int, res: Resource) -> int | None:
        r = rejected_records.c
        return conn.execute(
            sa.select(sa.func.max(r.reject_id)).where(
                r.import_id == import_id, r.resource == res.name, r.severity == "error"
            )
        ).scalar()

    def _staged_import(self, conn: sa.Connection, import_id: int) -> tuple[ImportRun, sql.Scope]:
        """The import and its scope, if its snapshot is still in staging (not published or discarded)."""
        run = self._import(conn, import_id)
        if run.status not in STAGED_STATUSES:
            raise WarehouseError(f"import {import_id} is {run.status}; its snapshot is no longer staged")
        return run, self._scope(run)

    @staticmethod
    def _scope(run: ImportRun) -> sql.Scope:
        """An additions_only import infers no deletions from absence, whatever its sync mode."""
        full = run.sync_mode == "full" and not run.additions_only
        return sql.Scope(run.import_id, run.district_id, run.school_year, full=full)

    def _ensure_classified(self, conn: sa.Connection, run: ImportRun, res: Resource) -> bool:
        """Make the resource's staging rows carry a classification that is right now; True if the pass ran.

        It runs when there is none (never classified, or more rows staged since) or when the district's
        published rows changed since it ran (``classify.published_watermark``).  Otherwise only error
        rejects recorded since the last withdrawal are withdrawn (deleting a classified row keeps the
        counts right).  The resource's counts row is locked first (Postgres), so two steps of one import
        never classify the same resource at once; the watermark is read before the pass, so a publish
        committing during it leaves the classification marked stale, never the other way round.
        """
        c = import_resource_counts.c
        query = sa.select(c.classified_watermark, c.purged_reject_id, c.unmarked_change).where(
            c.import_id == run.import_id, c.resource == res.name
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        mark = classify.published_watermark(conn, run.district_id)
        if row is not None and row.classified_watermark == mark:
            latest = self._latest_error_reject(conn, run.import_id, res)
            if latest is not None and (row.purged_reject_id is None or latest > row.purged_reject_id):
                self._purge(conn, run.import_id, res)
            return False
        tables = staging.for_import(run.import_id, res.name)
        sql.deduplicate(conn, tables, run.import_id)  # one row per record (sets work_mem on Postgres)
        self._purge(conn, run.import_id, res)  # quarantined records out
        marked_before = row is None or row.unmarked_change is not None
        unmarked = classify.classify_resource(conn, tables, self._scope(run), marked_before=marked_before)
        if run.additions_only:
            self._withhold(conn, run, res)
        conn.execute(
            import_resource_counts.update()
            .where(c.import_id == run.import_id, c.resource == res.name)
            .values(classified_watermark=mark, unmarked_change=unmarked)
        )
        return True

    def _withhold(self, conn: sa.Connection, run: ImportRun, res: Resource) -> None:
        """additions_only: withdraw staged deletions of alive rows, counted as ``withheld``."""
        removed = classify.withhold_deletions(
            conn, staging.for_import(run.import_id, res.name), self._scope(run)
        )
        if removed:
            self._ensure_counts_row(conn, run.import_id, res.name)
            c = import_resource_counts.c
            conn.execute(
                import_resource_counts.update()
                .where(c.import_id == run.import_id, c.resource == res.name)
                .values(withheld=c.withheld + removed)
            )

    def _diff(self, conn: sa.Connection, run: ImportRun, res: Resource) -> ChangeCounts:
        """The resource's counts: one aggregate over its classified staging rows (classified if stale)."""
        tables = staging.for_import(run.import_id, res.name)
        self._ensure_classified(conn, run, res)
        c = import_resource_counts.c
        counts = conn.execute(
            sa.select(c.fetched, c.quarantined, c.withheld).where(
                c.import_id == run.import_id, c.resource == res.name
            )
        ).first()
        fetched, quarantined, withheld = (int(v) for v in counts) if counts is not None else (0, 0, 0)
        return classify.count(conn, tables, self._scope(run), fetched, quarantined, withheld)

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
