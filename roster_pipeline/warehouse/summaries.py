"""Change summaries of a staged import, as the DataFrames the threshold checks read.

``change_summary``: one row per resource (the whole catalogue, in order) — what publishing would add,
update and delete, as counts and as % of what is published now, plus the quarantined share of what was
fetched.  ``school_summary``: per school, how many users and enrollments it has now and would have
after publishing, because one school vanishing is a disaster even when the district-wide % is small.

Everything is counted in SQL; only per-resource / per-school aggregates come back to Python.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import sqlalchemy as sa

from roster_pipeline.records.catalogue import RESOURCES

from . import staging as stg
from .classify import unmarked_change
from .counts import ChangeCounts
from .schema import TABLES, import_resource_counts, import_runs
from .scope import Scope, unreadable_id_sql

CHANGE_SUMMARY_COLUMNS: tuple[str, ...] = (
    "resource",
    "published_before",
    "fetched",
    "added",
    "updated",
    "deleted",
    "unchanged",
    "tobedeleted",
    "rejected",
    "added_pct",
    "updated_pct",
    "deleted_pct",
    "rejected_pct",
)
SCHOOL_SUMMARY_COLUMNS: tuple[str, ...] = (
    "school_sourced_id",
    "school_name",
    "resource",
    "published_before",
    "after",
    "drop",
    "drop_pct",
)
SCHOOL_RESOURCES: tuple[str, ...] = ("users", "enrollments")


def pct(count: int, base: int) -> float:
    """100 * count / base; 0.0 when there is no base (a first import trips no % threshold)."""
    return 100.0 * count / base if base > 0 else 0.0


def published_alive(conn: sa.Connection, scope: Scope) -> dict[str, int]:
    """Alive published rows per resource in the import's scope (district; school year if year-scoped)."""
    out = {}
    for res in RESOURCES:
        p = TABLES[res.name].published.c
        query = sa.select(sa.func.count()).where(p.district_id == scope.district_id, p.deleted_at.is_(None))
        if res.year_scoped:
            query = query.where(p.school_year == scope.school_year)
        out[res.name] = int(conn.execute(query).scalar_one())
    return out


def change_summary(
    conn: sa.Connection, scope: Scope, counts: Mapping[str, ChangeCounts], rejected: Mapping[str, int]
) -> pd.DataFrame:
    """The per-resource frame. ``counts``: the import's diff per staged resource (others count as zero);
    ``rejected``: distinct records with an error reject per resource.

    ``fetched`` is every record the SIS served: rows staged, minus rows the quarantine withdrew again,
    plus the distinct rejected records (whether they were kept out of staging or withdrawn from it).
    """
    before = published_alive(conn, scope)
    rows = []
    for res in RESOURCES:
        c = counts.get(res.name, ChangeCounts())
        n_rejected = int(rejected.get(res.name, 0))
        fetched = max(c.fetched - c.quarantined, 0) + n_rejected
        base = before[res.name]
        rows.append(
            {
                "resource": res.name,
                "published_before": base,
                "fetched": fetched,
                "added": c.added,
                "updated": c.updated,
                "deleted": c.deleted,
                "unchanged": c.unchanged,
                "tobedeleted": c.tobedeleted,
                "rejected": n_rejected,
                "added_pct": pct(c.added, base),
                "updated_pct": pct(c.updated, base),
                "deleted_pct": pct(c.deleted, base),
                "rejected_pct": pct(n_rejected, fetched),
            }
        )
    frame = pd.DataFrame(rows, columns=list(CHANGE_SUMMARY_COLUMNS))
    return frame.astype(
        {c: "int64" for c in CHANGE_SUMMARY_COLUMNS[1:9]} | {c: "float64" for c in CHANGE_SUMMARY_COLUMNS[9:]}
    )


def published_before_import(conn: sa.Connection, run_import_id: int, scope: Scope) -> dict[str, int]:
    """Per resource: the alive published rows in the import's scope just before the import was published,
    the same base ``change_summary`` (so ``checked_snapshot``'s thresholds) computes its %s against.

    WHY reconstructed: a delta import never sees the unchanged rows, so its counts cannot give the base,
    and ``import_resource_counts`` does not store it.  Every publish changes the alive count of a resource
    by exactly ``added - deleted`` (``added`` includes re-added rows; first-seen ``tobedeleted`` records are
    inserted soft-deleted; ``deleted`` includes vanished rows), and an undo restores what its import
    changed.  So the base is the alive count now minus the net change of this import and of every import
    of the district published after it and not undone (same school year for year-scoped resources).  The
    import's own net counts only while it is published: a held or staged one has changed nothing yet, an
    undone one no longer has.
    A resource hard-deleted later by ``purge`` has lost its rows, so its old imports' base can no longer be
    rebuilt; it is then clamped at 0 rather than shown negative.
    """
    alive = published_alive(conn, scope)
    runs, counts = import_runs, import_resource_counts
    query = (
        sa.select(
            counts.c.resource, runs.c.school_year, sa.func.sum(counts.c.added - counts.c.deleted).label("net")
        )
        .join(runs, runs.c.import_id == counts.c.import_id)
        .where(
            runs.c.district_id == scope.district_id,
            runs.c.status == "published",
            runs.c.import_id >= run_import_id,
        )
        .group_by(counts.c.resource, runs.c.school_year)
    )
    year_scoped = {res.name for res in RESOURCES if res.year_scoped}
    for name, year, net in conn.execute(query):
        if name in alive and (name not in year_scoped or year == scope.school_year):
            alive[name] -= int(net or 0)
    return {name: max(count, 0) for name, count in alive.items()}


# -- per school ---------------------------------------------------------------------------------------


def _memberships(
    conn: sa.Connection, resource_name: str, alias: str, import_id: int, source: str | None = None
) -> tuple[str, str]:
    """(FROM clause, school expression) giving one row per (record, school it belongs to).

    Users belong to every org in ``org_sourced_ids`` (a JSON list; non-schools are filtered later),
    enrollments to their ``school_sourced_id``.  ``source``: the FROM item the records come from, ending in
    ``alias`` (default: the published table, or the import's staging table for any other alias).
    """
    name = TABLES[resource_name].published.name if alias == "p" else stg.table_name(resource_name, import_id)
    if source is None:
        source = f'"{name}" {alias}'
    if resource_name == "enrollments":
        return source, f"{alias}.school_sourced_id"
    if conn.dialect.name == "postgresql":
        return (
            f"{source} CROSS JOIN LATERAL jsonb_array_elements_text(CAST({alias}.org_sourced_ids AS jsonb)) "
            f"AS j(school)",
            "j.school",
        )
    return f"{source}, json_each({alias}.org_sourced_ids) j", "j.value"


def _published_where(resource_name: str) -> str:
    year = " AND p.school_year = :year" if TABLES[resource_name].resource.year_scoped else ""
    return f"p.district_id = :district{year} AND p.deleted_at IS NULL"


def _per_school(conn: sa.Connection, sql: str, params: dict[str, object]) -> dict[str, int]:
    return {school: int(n) for school, n in conn.execute(sa.text(sql), params) if school is not None}


def _vanished_sql(import_id: int) -> str:
    """SQL: sourcedIds of the resource (``:resource``) the full import soft-deletes (see
    ``classify.vanished_rows``: recorded by the classification, minus records quarantined since, none once
    an id could not be read)."""
    return (
        f'SELECT v.sourced_id FROM "{stg.vanished_name(import_id)}" v WHERE v.resource = :resource'
        " AND NOT EXISTS (SELECT 1 FROM rejected_records r WHERE r.import_id = :import_id AND r.resource = :resource"
        f" AND r.severity = 'error' AND r.sourced_id = v.sourced_id) AND NOT {unreadable_id_sql()}"
    )


def school_counts(
    conn: sa.Connection, scope: Scope, resource_name: str, staged: bool
) -> tuple[dict[str, int], dict[str, int]]:
    """({org: alive published records now}, {org: alive records after publishing}) for one resource.

    After = now, minus the published versions of the records the import replaces or deletes (``updated``,
    ``deleted``, vanished), plus the staged versions of the records it adds or replaces (``added``,
    ``readded``, ``updated``), read from the classification: ``unchanged`` records have the same hash, so
    the same schools, and are never read twice.
    """
    params: dict[str, object] = {
        "district": scope.district_id,
        "year": scope.school_year,
        "import_id": scope.import_id,
        "resource": resource_name,
    }
    p_from, p_school = _memberships(conn, resource_name, "p", scope.import_id)
    before = _per_school(
        conn,
        f"SELECT {p_school}, count(DISTINCT p.sourced_id) FROM {p_from} WHERE {_published_where(resource_name)} "
        f"GROUP BY {p_school}",
        params,
    )
    if not staged:  # the import does not touch this resource
        return before, dict(before)
    staging = stg.table_name(resource_name, scope.import_id)
    replaced = f"SELECT x.sourced_id FROM \"{staging}\" x WHERE x.import_id = :import_id AND x.change IN ('updated', 'deleted')"
    if scope.full:
        replaced += f" UNION ALL {_vanished_sql(scope.import_id)}"
    # Driven by the (usually few) replaced records, each probing the published primary key: a published
    # table without statistics yet (loaded by the previous publish) must not turn this into a scan of the
    # replaced set per published row.  Postgres: LATERAL fixes that order; SQLite's planner takes it anyway.
    published = TABLES[resource_name].published.name
    year = " AND p0.school_year = :year" if TABLES[resource_name].resource.year_scoped else ""
    probe = f"p0.district_id = :district{year} AND p0.deleted_at IS NULL AND p0.sourced_id = c.sourced_id"
    if conn.dialect.name == "postgresql":
        source = f'({replaced}) c CROSS JOIN LATERAL (SELECT p0.* FROM "{published}" p0 WHERE {probe}) p'
    else:
        source = f'({replaced}) c JOIN "{published}" p ON ' + probe.replace("p0.", "p.")
    r_from, r_school = _memberships(conn, resource_name, "p", scope.import_id, source)
    removed = _per_school(
        conn, f"SELECT {r_school}, count(DISTINCT p.sourced_id) FROM {r_from} GROUP BY {r_school}", params
    )
    s_from, s_school = _memberships(conn, resource_name, "s", scope.import_id)
    unmarked_added = (
        " OR s.change IS NULL" if unmarked_change(conn, scope.import_id, resource_name) == "added" else ""
    )
    added = _per_school(
        conn,
        f"SELECT {s_school}, count(DISTINCT s.sourced_id) FROM {s_from}"
        f" WHERE s.import_id = :import_id AND (s.change IN ('added', 'readded', 'updated'){unmarked_added})"
        f" GROUP BY {s_school}",
        params,
    )
    after = {
        school: n
        for school in set(before) | set(added)
        if (n := before.get(school, 0) - removed.get(school, 0) + added.get(school, 0)) > 0
    }
    return before, after


def school_names(conn: sa.Connection, scope: Scope) -> tuple[dict[str, str | None], set[str]]:
    """({org: name}, {orgs of type school}) from published orgs of the district and this import's staging
    (the staged version wins: a renamed school shows its new name)."""
    t = stg.for_import(scope.import_id, "orgs")
    names: dict[str, str | None] = {}
    schools: set[str] = set()
    published = sa.select(t.published.c.sourced_id, t.published.c.name, t.published.c.type).where(
        t.published.c.district_id == scope.district_id
    )
    staged = (
        sa.select(t.staging.c.sourced_id, t.staging.c.name, t.staging.c.type)
        .where(t.staging.c.import_id == scope.import_id)
        .order_by(t.staging.c.row_id)
    )
    for query in (published, staged):
        for sourced_id, name, kind in conn.execute(query):
            names[sourced_id] = name
            if (kind or "").lower() == "school":
                schools.add(sourced_id)
    return names, schools


def school_summary(conn: sa.Connection, scope: Scope, staged: set[str]) -> pd.DataFrame:
    """One row per (school, resource) for users and enrollments, every school with records before or after.

    A school is an org of type ``school`` or any enrollment's school; a user counts in each school of its
    orgs.  ``drop`` = max(before - after, 0).  A school that vanished shows after = 0, drop = 100%.
    """
    names, schools = school_names(conn, scope)
    counted = {name: school_counts(conn, scope, name, name in staged) for name in SCHOOL_RESOURCES}
    enrollment_before, enrollment_after = counted["enrollments"]
    schools |= set(enrollment_before) | set(enrollment_after)
    rows = []
    for resource_name in SCHOOL_RESOURCES:
        before, after = counted[resource_name]
        for school in sorted((set(before) | set(after)) & schools):
            b, a = before.get(school, 0), after.get(school, 0)
            drop = max(b - a, 0)
            rows.append(
                {
                    "school_sourced_id": school,
                    "school_name": names.get(school),
                    "resource": resource_name,
                    "published_before": b,
                    "after": a,
                    "drop": drop,
                    "drop_pct": pct(drop, b),
                }
            )
    frame = pd.DataFrame(rows, columns=list(SCHOOL_SUMMARY_COLUMNS))
    return frame.astype(
        {"published_before": "int64", "after": "int64", "drop": "int64", "drop_pct": "float64"}
    )
