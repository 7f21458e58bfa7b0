"""The publish path: classify each staged resource against the published rows, quarantine what fails a
check, and publish a whole import in ONE transaction (or undo the last one, or purge a resource).

The published tables never see a partial snapshot.  An import whose checks fail is ``held`` (its
snapshot stays in staging for the admin's review: approve publishes it with ``override=True``, reject
discards it); a ``dry_run`` import is fetched, checked and diffed but can never be published.  Records
failing a check are quarantined (``rejected_records``): never published, and never the cause of a
deletion.

Locks are taken in one order: the import's ``import_runs`` row (``SELECT ... FOR UPDATE``), then, in
publish only, the district's advisory lock (one publish per district at a time), then the district's
published rows and the import's own staging tables.  A classification pass (``classify.py``) locks the
resource's ``import_resource_counts`` row, and never waits on the district lock.

Classified once: each resource's staged rows are classified against the published rows in one SQL pass
(``classify``; normally as the resource finishes staging, via ``diff``), and the counts, summaries, field
diff and publish read that classification instead of joining staging with the published rows again.
The pass runs again only when it would be wrong: more rows staged, or the district's published rows
changed since (checked again inside the publish transaction, under the district lock).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from roster_pipeline.records.catalogue import Resource, resource
from roster_pipeline.records.rejects import Reject

from . import archive, classify, purge, quarantine, staging, undo
from . import diff as sql
from .counts import ChangeCounts
from .errors import WarehouseError
from .lifecycle import OPEN_STATUSES, ImportLifecycle, ImportRun, utc_now
from .locks import lock_district_writes
from .schema import STAGED_STATUSES, TABLES, import_resource_counts, import_runs, rejected_records

log = logging.getLogger(__name__)

#: A publish that adds, updates or deletes at least this many rows of a resource refreshes the planner
#: statistics of its published table (``PublishPath._refresh_published_statistics``).
ANALYZE_AFTER_ROWS = 10_000


class PublishPath(ImportLifecycle):
    """Classification, quarantine, the one-transaction publish, undo and purges of an import."""

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
        keeps the pass out of their transactions, and lets the caller time it.

        One probe first finds the resources with anything to do, so a call when all is current (the
        threshold checks and every report call it) costs three queries, not a transaction per resource."""
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
            names = self._needing_classification(conn, run, names)
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
        now = utc_now()
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
            values: dict[str, Any] = {"status": "published", "finished_at": utc_now(), "error": None}
            if run.status == "held":  # only a held import had thresholds to override
                values.update(
                    overridden_by=overridden_by, override_reason=override_reason, overridden_at=utc_now()
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

    def purge_resource(
        self, district_id: str, resource_name: str, reason: str, import_id: int | None = None
    ) -> purge.PurgeCounts:
        """Hard-delete every row of one resource for one district (all tables that hold it), recorded in
        ``data_purges`` when anything was removed; a no-op when there is nothing left. See ``purge``."""
        res = resource(resource_name)
        with self.engine.begin() as conn:
            return purge.purge_resource(conn, district_id, res.name, import_id, reason, utc_now())

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

    def record_rejects(self, import_id: int, rejects: Sequence[Reject]) -> int:
        """Store failed checks of records that were kept out of staging (COPY on Postgres). Returns rows."""
        if not rejects:
            return 0
        with self.engine.begin() as conn:
            run = self._import(conn, import_id)
            self._require_unpublished(run)
            quarantine.insert_rows(
                conn, quarantine.build_rows(import_id, run.district_id, rejects, utc_now())
            )
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
            quarantine.insert_rows(
                conn, quarantine.build_rows(import_id, run.district_id, completed, utc_now())
            )
            for name in dict.fromkeys(resource(r.resource).name for r in rejects if r.severity == "error"):
                removed += self._purge(conn, import_id, resource(name))
        return removed

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
            if _rejects_since_withdrawal(latest, row.purged_reject_id):
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

    def _needing_classification(self, conn: sa.Connection, run: ImportRun, names: Sequence[str]) -> list[str]:
        """The resources ``_ensure_classified`` would do anything for, by the same rules (no classification,
        or a stale one, or error rejects recorded since the last withdrawal), read without locks: a change
        after this probe is caught by the readers, who ensure the classification in their transactions."""
        mark = classify.published_watermark(conn, run.district_id)
        c = import_resource_counts.c
        rows = {
            row.resource: row
            for row in conn.execute(
                sa.select(c.resource, c.classified_watermark, c.purged_reject_id).where(
                    c.import_id == run.import_id
                )
            )
        }
        r = rejected_records.c
        latest: dict[str, int] = dict(
            conn.execute(  # (resource, max id) rows
                sa.select(r.resource, sa.func.max(r.reject_id))
                .where(r.import_id == run.import_id, r.severity == "error")
                .group_by(r.resource)
            ).all()
        )

        def needs(name: str) -> bool:
            row = rows.get(name)
            if row is None or row.classified_watermark != mark:
                return True
            return _rejects_since_withdrawal(latest.get(name), row.purged_reject_id)

        return [name for name in names if needs(resource(name).name)]

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


def _rejects_since_withdrawal(latest_error_reject: int | None, purged_reject_id: int | None) -> bool:
    """An error reject was recorded after the last withdrawal from staging (or none was ever withdrawn)."""
    return latest_error_reject is not None and (
        purged_reject_id is None or latest_error_reject > purged_reject_id
    )
