"""Warehouse tables, generated from the resource catalogue and ``columns.py``, and the create step.

Per resource there are three tables with the same flattened columns:

* ``<resource>`` — what is published: keyed by district (+ school year when year-scoped) and sourcedId,
  soft-deleted only (``deleted_at``), with the record hash used by the SQL diff;
* ``stg_<resource>_<import_id>`` — one import's snapshot before checks, in tables of its own (see
  ``staging.py``; ``TABLES[name].staging`` is their template, not a table in the database); permissive
  (no NOT NULL on record fields, duplicates allowed until the diff de-duplicates them) because bad SIS
  data must be *reported* there, not bounce off a constraint mid-COPY;
* ``<resource>_history`` — the previous version of every row an import changed or deleted.

Each import also gets ``vanished_<import_id>``: the published rows its full pull no longer has (found
by the classification pass, ``classify.py``, which also fills the staging tables' ``change`` column).

Published tables are stricter than staging (``status`` is NOT NULL): a record that slipped past the
checks fails the publish transaction as a whole instead of being half-published.

Control tables: ``import_runs`` (one row per import and its status), ``import_resource_counts``,
``rejected_records`` (the quarantine: one row per failed check of one record) and
``import_field_changes`` (the per-record, per-field diff of a staged snapshot, for review and emails) and
``data_purges`` (data removed because a district switched it off, e.g. demographics).

Derived tables (v7, ``derived.py``): ``class_teachers`` and ``student_logins``, rebuilt per district from
the published rows after each publish (never from staging), and ``derived_warnings``, what each rebuild
found worth an admin's look (the Import Results email and the Dagster metadata read the same rows).

Why not Alembic: the schema is derived from code (the catalogue) and operators get one explicit,
idempotent ``create_schema`` (``setup``) with a ``schema_version`` row; numbered upgrade steps live in
``migrations.py`` (``MIGRATIONS``) and can move to Alembic when they get numerous.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from roster_pipeline.records.catalogue import RESOURCES, Resource

from .columns import columns_for

SCHEMA_VERSION = 7

# Import lifecycle.  running → staged → published | held | dry_run | failed | discarded;
# held → published (approve, thresholds overridden) | discarded (reject);
# published → undone (the district rolled back to the state before it; see undo.py).
IMPORT_STATUSES: tuple[str, ...] = (
    "running",
    "staged",
    "published",
    "failed",
    "discarded",
    "held",
    "dry_run",
    "undone",
)
SEVERITIES: tuple[str, ...] = ("error", "warning")
FIELD_CHANGES: tuple[str, ...] = ("added", "updated", "deleted", "readded")
#: The staging column the classification pass fills in (see ``classify.py`` for its values).
CHANGE_COLUMN = "change"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


metadata = sa.MetaData()
# The staging templates: never created as such; each import gets its own copies (staging.py).
staging_templates = sa.MetaData()

# JSONB on Postgres (queryable, compact); JSON text on SQLite.
RawJson = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)
# BIGINT identity on Postgres; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


@dataclass(frozen=True)
class ResourceTables:
    resource: Resource
    published: sa.Table
    staging: sa.Table
    history: sa.Table
    key: tuple[str, ...]  # key columns of a published row, e.g. (district_id, school_year, sourced_id)
    data_columns: tuple[str, ...]  # flattened record columns, in columns.py order


def _record_columns(resource: Resource, strict: bool) -> list[sa.Column]:
    cols = []
    for spec in columns_for(resource.name):
        nullable = not (strict and spec.column == "status")
        cols.append(sa.Column(spec.column, sa.Text, nullable=nullable))
    return cols


def _key_columns(resource: Resource) -> list[sa.Column]:
    cols: list[sa.Column] = [sa.Column("district_id", sa.Text, nullable=False)]
    if resource.year_scoped:
        cols.append(sa.Column("school_year", sa.Integer, nullable=False))
    cols.append(sa.Column("sourced_id", sa.Text, nullable=False))
    return cols


def _build(resource: Resource) -> ResourceTables:
    name = resource.name
    key = tuple(c.name for c in _key_columns(resource))
    published = sa.Table(
        name,
        metadata,
        *_key_columns(resource),
        *_record_columns(resource, strict=True),
        sa.Column("raw", RawJson, nullable=False),
        sa.Column("record_hash", sa.Text, nullable=False),
        sa.Column("first_seen_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("deleted_at", Timestamp, nullable=True),
        sa.Column("last_import_id", sa.BigInteger, nullable=False),
        # v3: set on every row of a school year once a newer year is published (rollover); see archive.py
        *([sa.Column("archived_at", Timestamp, nullable=True)] if resource.year_scoped else []),
        sa.PrimaryKeyConstraint(*key, name=f"pk_{name}"),
    )
    staging = sa.Table(
        f"stg_{name}",
        staging_templates,
        sa.Column("row_id", BigId, primary_key=True, autoincrement=True),
        sa.Column("import_id", sa.BigInteger, nullable=False),
        *_key_columns(resource),
        *_record_columns(resource, strict=False),
        # Text, not JSONB: parsing JSON would double COPY time, and only changed rows need it (cast
        # at publish).  Staging data is canonical JSON produced by the loader, so it is valid anyway.
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("record_hash", sa.Text, nullable=False),
        # v6: what publishing does with the row, set by the classification pass (classify.py); NULL until
        # then. Not loaded: the loader writes only the record's columns (``staging.for_loading``).
        sa.Column(CHANGE_COLUMN, sa.Text, nullable=True, info={"classification": True}),
        sa.Index(f"ix_stg_{name}_import_sourced", "import_id", "sourced_id"),
    )
    history = sa.Table(
        f"{name}_history",
        metadata,
        sa.Column("history_id", BigId, primary_key=True, autoincrement=True),
        *_key_columns(resource),
        sa.Column("status", sa.Text),
        sa.Column("raw", RawJson, nullable=False),
        sa.Column("record_hash", sa.Text, nullable=False),
        sa.Column("valid_from", Timestamp, nullable=False),
        sa.Column("valid_to", Timestamp, nullable=False),
        sa.Column("deleted_at", Timestamp, nullable=True),
        sa.Column("import_id", sa.BigInteger, nullable=False),  # the import that wrote this version
        sa.Column("superseded_by_import_id", sa.BigInteger, nullable=False),
        # written by a publish: updated | deleted | vanished | readded (the version the import replaced);
        # by an undo (undo.py): undone (the import's version, replaced by the one before it) | removed
        # (a row the undone import had inserted). superseded_by_import_id is then the undone import.
        sa.Column("change", sa.Text, nullable=False),
        sa.Index(f"ix_{name}_history_key", *key),
        sa.Index(f"ix_{name}_history_import", "superseded_by_import_id"),
    )
    data_columns = tuple(c.column for c in columns_for(name))
    return ResourceTables(resource, published, staging, history, key, data_columns)


TABLES: dict[str, ResourceTables] = {r.name: _build(r) for r in RESOURCES}

# v6: the published rows a FULL import would soft-delete because its pull no longer has them (``vanished``),
# found once by the classification pass (classify.py); one per import, ``vanished_<import_id>``.
vanished_template = sa.Table(
    "vanished",
    staging_templates,
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("sourced_id", sa.Text, nullable=False),
    sa.Index("ix_vanished_resource", "resource", "sourced_id"),
)

import_runs = sa.Table(
    "import_runs",
    metadata,
    sa.Column("import_id", BigId, primary_key=True, autoincrement=True),
    sa.Column("district_id", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text, nullable=True),
    sa.Column("school_year", sa.Integer, nullable=False),
    sa.Column("sync_mode", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    # v2: why an import was held, and who published it anyway (the review's approve).
    sa.Column("hold_reason", sa.Text, nullable=True),
    sa.Column("overridden_by", sa.Text, nullable=True),
    sa.Column("override_reason", sa.Text, nullable=True),
    sa.Column("overridden_at", Timestamp, nullable=True),
    # v3: imported inside a rollover additions_only window: publishing never deletes anything
    sa.Column("additions_only", sa.Boolean, nullable=False, server_default=sa.false()),
    # v4: the import was undone (status 'undone'): who, when, why, and whether the checks were overridden
    sa.Column("undone_by", sa.Text, nullable=True),
    sa.Column("undone_at", Timestamp, nullable=True),
    sa.Column("undo_note", sa.Text, nullable=True),
    sa.Column("undo_forced", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.CheckConstraint("sync_mode IN ('full', 'delta')", name="ck_import_runs_sync_mode"),
    sa.CheckConstraint(_in("status", IMPORT_STATUSES), name="ck_import_runs_status"),
    sa.Index("ix_import_runs_district", "district_id", "started_at"),
    sa.Index("ix_import_runs_run", "run_id"),
)

import_resource_counts = sa.Table(
    "import_resource_counts",
    metadata,
    sa.Column("import_id", sa.BigInteger, nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("batches", sa.Integer, nullable=False, server_default="0"),  # stage() calls; >0 = staged
    sa.Column("fetched", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("duplicates", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("added", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("deleted", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("unchanged", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("tobedeleted", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column(
        "rejected", sa.BigInteger, nullable=False, server_default="0"
    ),  # distinct error records (at publish)
    # v2: staged rows withdrawn by the quarantine (keeps ``duplicates`` honest after reject_staged)
    sa.Column("quarantined", sa.BigInteger, nullable=False, server_default="0"),
    # v3: staged deletions held back by an additions_only import (see classify.withhold_deletions)
    sa.Column("withheld", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("pages", sa.Integer, nullable=False, server_default="0"),
    sa.Column("seconds", sa.Float, nullable=False, server_default="0"),
    # v6: the resource's staging rows carry their ``change`` (classify.py), computed against the district's
    # published tables as of this watermark; NULL = not classified (reset whenever more rows are staged).
    sa.Column("classified_watermark", sa.Text, nullable=True),
    # v6: the highest error reject id whose records were withdrawn from staging since (``_purge``)
    sa.Column("purged_reject_id", sa.BigInteger, nullable=True),
    # v6: what a staging row the pass left unmarked (``change`` NULL) stands for: added | unchanged
    sa.Column("unmarked_change", sa.Text, nullable=True),
    sa.PrimaryKeyConstraint("import_id", "resource", name="pk_import_resource_counts"),
)

# v4: what undoing an import did to each resource (see undo.py); the undo email and the CLI read these.
import_undo_counts = sa.Table(
    "import_undo_counts",
    metadata,
    sa.Column("import_id", sa.BigInteger, nullable=False),  # the undone import
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("restored", sa.BigInteger, nullable=False, server_default="0"),  # previous version back
    sa.Column("removed", sa.BigInteger, nullable=False, server_default="0"),  # rows the import had inserted
    sa.Column("unarchived", sa.BigInteger, nullable=False, server_default="0"),  # rollover undone
    # the resource's current view (alive rows of the current school year) before and after the undo,
    # and how it changed: what the change thresholds were checked against
    sa.Column("published_before", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("published_after", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("added", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("deleted", sa.BigInteger, nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("import_id", "resource", name="pk_import_undo_counts"),
)

rejected_records = sa.Table(
    "rejected_records",
    metadata,
    sa.Column("reject_id", BigId, primary_key=True, autoincrement=True),
    sa.Column("import_id", sa.BigInteger, nullable=False),
    sa.Column("district_id", sa.Text, nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("sourced_id", sa.Text, nullable=True),
    # sourced_id, or '#' + a hash of the raw record when it has none: "distinct records" counts use it,
    # because one bad record failing three checks is three rows here.
    sa.Column("record_key", sa.Text, nullable=False),
    sa.Column("field", sa.Text, nullable=False),
    sa.Column("check_name", sa.Text, nullable=False),
    sa.Column("value", sa.Text, nullable=True),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("raw", RawJson, nullable=True),
    sa.Column("recorded_at", Timestamp, nullable=False),
    sa.CheckConstraint(_in("severity", SEVERITIES), name="ck_rejected_records_severity"),
    # (import_id, resource) prefix serves the per-resource counts; sourced_id the NOT EXISTS probes of
    # the diff (a quarantined record must never count as vanished).
    sa.Index("ix_rejected_records_import_resource", "import_id", "resource", "sourced_id"),
    sa.Index("ix_rejected_records_district", "district_id", "recorded_at"),
)

import_field_changes = sa.Table(
    "import_field_changes",
    metadata,
    sa.Column("change_id", BigId, primary_key=True, autoincrement=True),
    sa.Column("import_id", sa.BigInteger, nullable=False),
    sa.Column("district_id", sa.Text, nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("sourced_id", sa.Text, nullable=False),
    sa.Column("change", sa.Text, nullable=False),
    sa.Column(
        "field", sa.Text, nullable=False
    ),  # flattened column name; '*' for a whole added/deleted record
    sa.Column("old_value", sa.Text, nullable=True),
    sa.Column("new_value", sa.Text, nullable=True),
    sa.CheckConstraint(_in("change", FIELD_CHANGES), name="ck_import_field_changes_change"),
    sa.Index("ix_import_field_changes_import", "import_id", "resource", "sourced_id"),
)

# One row per purge of a resource's data for a district (e.g. demographics switched off: pii in the
# registry): what was removed from where, by which import, and why.  Holds counts only, never records.
data_purges = sa.Table(
    "data_purges",
    metadata,
    sa.Column("purge_id", BigId, primary_key=True, autoincrement=True),
    sa.Column("district_id", sa.Text, nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("import_id", sa.BigInteger, nullable=True),  # the import whose run purged it, if any
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("purged_at", Timestamp, nullable=False),
    sa.Column("published_rows", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("history_rows", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("staging_rows", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rejected_rows", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("field_change_rows", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_data_purges_district", "district_id", "purged_at"),
)

# v7: derived tables, one district's rows replaced as a whole by each rebuild (see derived.py).  Keyed by
# district and sourcedIds only: they hold the district's current school year, like the current_ views.
class_teachers = sa.Table(
    "class_teachers",
    metadata,
    sa.Column("district_id", sa.Text, nullable=False),
    sa.Column("school_year", sa.Integer, nullable=False),
    sa.Column("class_sourced_id", sa.Text, nullable=False),
    sa.Column("teacher_sourced_id", sa.Text, nullable=False),
    sa.Column("family_name", sa.Text, nullable=True),
    sa.Column("given_name", sa.Text, nullable=True),
    sa.Column("role", sa.Text, nullable=False),  # the enrollment's role: teacher, or an opted-in one
    sa.Column("is_primary", sa.Boolean, nullable=False),
    sa.Column("display_order", sa.Integer, nullable=False),  # 1.. per class: family, given name, sourcedId
    sa.Column("import_id", sa.BigInteger, nullable=False),  # the published import the rows reflect
    sa.PrimaryKeyConstraint(
        "district_id", "school_year", "class_sourced_id", "teacher_sourced_id", name="pk_class_teachers"
    ),
)

student_logins = sa.Table(
    "student_logins",
    metadata,
    sa.Column("district_id", sa.Text, nullable=False),
    sa.Column("student_sourced_id", sa.Text, nullable=False),
    sa.Column("family_name", sa.Text, nullable=True),
    sa.Column("given_name", sa.Text, nullable=True),
    sa.Column("student_devices", sa.Text, nullable=False),  # the district's setting the row was built under
    sa.Column("chromebook_login", sa.Text, nullable=True),  # the email; NULL in a no_chromebooks district
    sa.Column("other_device_login", sa.Text, nullable=True),  # the username; NULL in a chromebooks_only one
    sa.Column("problem", sa.Text, nullable=True),  # no_email | no_username: cannot sign in; NULL when fine
    sa.Column("import_id", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("district_id", "student_sourced_id", name="pk_student_logins"),
)

derived_warnings = sa.Table(
    "derived_warnings",
    metadata,
    sa.Column("warning_id", BigId, primary_key=True, autoincrement=True),
    sa.Column("district_id", sa.Text, nullable=False),
    sa.Column("import_id", sa.BigInteger, nullable=False),  # the published import the rebuild read
    sa.Column("table_name", sa.Text, nullable=False),  # class_teachers | student_logins
    sa.Column("check_name", sa.Text, nullable=False),  # e.g. no_primary_teacher, no_email
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("sample_ids", sa.Text, nullable=False),  # JSON list: the first few sourcedIds concerned
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("recorded_at", Timestamp, nullable=False),
    sa.Index("ix_derived_warnings_import", "import_id", "table_name"),
    sa.Index("ix_derived_warnings_district", "district_id", "table_name"),
)

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", Timestamp, nullable=False),
)

# Imports whose snapshot is (or may still be) in their own staging tables.
STAGED_STATUSES = ("running", "staged", "held", "dry_run", "failed")
