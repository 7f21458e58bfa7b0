"""What an import did or would do, read for the threshold checks, the review and the emails: change and
school summaries, the field diff, rejects and published counts.  Readers classify on demand (again when
the published rows changed since), so a report on a staged import always compares it with what is
published now, however long it waited for review."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd
import sqlalchemy as sa

from roster_pipeline.records.catalogue import RESOURCES, resource
from roster_pipeline.records.rejects import Reject

from . import field_diff, quarantine, staging, summaries
from .publishing import PublishPath
from .schema import TABLES


class ImportReports(PublishPath):
    """Summaries, the field diff, rejects and counts of an import or a district."""

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
