"""Rebuild a district's derived tables from its published roster (Dagster-free: assets, the review's
approve and scripts call these).

Each build reads the published rows (``warehouse.derived``), applies the rules (``class_teachers``,
``student_logins``), replaces the district's rows and records its warnings against the published import
it read, all in one transaction.  A district with nothing published yet cannot be built: there is no
roster to derive from, and an empty table would look like a district without classes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from roster_pipeline.registry.districts import District
from roster_pipeline.warehouse import Warehouse
from roster_pipeline.warehouse import derived as sql
from roster_pipeline.warehouse.derived import DerivedWarning
from roster_pipeline.warehouse.published import latest_published_import_id

from .class_teachers import FINDING_TEXT, ClassFindings, TeacherEnrollment, order_class
from .student_logins import LOGIN_FIELDS, PROBLEM_TEXT, login_for

CLASS_TEACHERS = "class_teachers"
STUDENT_LOGINS = "student_logins"
SAMPLE_IDS = 5  # sourcedIds named in a warning (the table lists them all)
INSERT_BATCH = 5_000  # derived rows written per INSERT


class NothingPublishedError(RuntimeError):
    """The district has no published import: nothing to derive from."""


@dataclass
class DerivedBuild:
    """What one rebuild wrote: rows, the import they reflect, warnings, and figures for the UI."""

    table_name: str
    district_id: str
    import_id: int
    rows: int
    warnings: list[DerivedWarning] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def warning_count(self) -> int:
        """Records concerned (classes or students), summed over the checks."""
        return sum(w.count for w in self.warnings)


# student_logins rows are written as tuples in this column order (150,000 students: no dict per row).
STUDENT_LOGIN_COLUMNS = (
    "district_id",
    "student_sourced_id",
    "family_name",
    "given_name",
    "student_devices",
    "chromebook_login",
    "other_device_login",
    "problem",
    "import_id",
)
assert sql.columns(STUDENT_LOGINS) == STUDENT_LOGIN_COLUMNS, (
    "keep build_student_logins in step with the table"
)


def _row_builder(table_name: str) -> Callable[..., tuple[Any, ...]]:
    """Named values → the tuple ``insert_rows`` takes, in the table's column order."""
    names = sql.columns(table_name)
    return lambda **value: tuple(value[name] for name in names)


def _published_or_refuse(conn: Any, district_id: str, table_name: str) -> int:
    import_id = latest_published_import_id(conn, district_id)
    if import_id is None:
        raise NothingPublishedError(
            f"district {district_id!r}: {table_name} not built: the district has no published import yet "
            "(it is built from the published roster only; sync the district first)"
        )
    return int(import_id)


def _warning(district_id: str, table_name: str, check: str, what: str, ids: list[str]) -> DerivedWarning:
    ids = sorted(ids)  # the same "first few" on SQLite and Postgres, whatever their collations
    sample = ids[:SAMPLE_IDS]
    more = f", … ({len(ids) - len(sample)} more in {table_name})" if len(ids) > len(sample) else ""
    message = f"district {district_id!r}: {len(ids)} {what} (first: {', '.join(sample)}{more})"
    return DerivedWarning(table_name, check, len(ids), sample, message)


def build_class_teachers(warehouse: Warehouse, district: District) -> DerivedBuild:
    """Every teacher of every current class, in display order; classes with several / no primary or no
    teacher are warnings."""
    roles = list(district.class_teachers.include_roles)
    findings = ClassFindings()
    rows = classes = 0
    with sql.rebuilding(warehouse.engine) as conn:
        import_id = _published_or_refuse(conn, district.id, CLASS_TEACHERS)
        sql.clear_district(conn, CLASS_TEACHERS, district.id)
        by_class: dict[tuple[str, int], list[TeacherEnrollment]] = defaultdict(list)
        for r in sql.teaching_enrollments(conn, district.id, roles):
            by_class[(r["class_sourced_id"], int(r["school_year"]))].append(
                TeacherEnrollment(
                    r["class_sourced_id"],
                    int(r["school_year"]),
                    r["user_sourced_id"],
                    r["role"],
                    r["primary"],
                    r["family_name"],
                    r["given_name"],
                )
            )
        values = _row_builder(CLASS_TEACHERS)
        batch: list[tuple[Any, ...]] = []
        for class_id, year in sql.current_classes(conn, district.id):
            ordered, found = order_class(class_id, by_class.get((class_id, year), []))
            findings.merge(found)
            classes += 1
            batch += [values(district_id=district.id, import_id=import_id, **vars(t)) for t in ordered]
            if len(batch) >= INSERT_BATCH:
                rows += sql.insert_rows(conn, CLASS_TEACHERS, batch)
                batch = []
        rows += sql.insert_rows(conn, CLASS_TEACHERS, batch)
        warnings = [
            _warning(district.id, CLASS_TEACHERS, check, finding_text(CLASS_TEACHERS, check), ids)
            for check, ids in findings.classes.items()
            if ids
        ]
        sql.record_warnings(conn, district.id, import_id, CLASS_TEACHERS, warnings)
    return DerivedBuild(
        CLASS_TEACHERS,
        district.id,
        import_id,
        rows,
        warnings,
        {
            "classes": classes,
            "include_roles": ", ".join(roles),
            **findings.counts(),
        },
    )


def build_student_logins(warehouse: Warehouse, district: District) -> DerivedBuild:
    """One row per current student with the login(s) the district's ``student_devices`` calls for; a
    student who cannot sign in keeps a row, with the reason in ``problem``, and is a warning."""
    devices = district.student_devices
    problems: dict[str, list[str]] = defaultdict(list)
    rows = 0
    with sql.rebuilding(warehouse.engine) as conn:
        import_id = _published_or_refuse(conn, district.id, STUDENT_LOGINS)
        sql.clear_district(conn, STUDENT_LOGINS, district.id)
        for page in sql.student_pages(conn, district.id):
            batch = []
            for student in page:
                login = login_for(devices, student.email, student.username)
                if login.problem:
                    problems[login.problem].append(student.sourced_id)
                batch.append(
                    (
                        district.id,
                        student.sourced_id,
                        student.family_name,
                        student.given_name,
                        devices,
                        login.chromebook_login,
                        login.other_device_login,
                        login.problem,
                        import_id,
                    )
                )
            rows += sql.insert_rows(conn, STUDENT_LOGINS, batch)
        warnings = [
            _warning(district.id, STUDENT_LOGINS, problem, finding_text(STUDENT_LOGINS, problem), ids)
            for problem, ids in sorted(problems.items())
        ]
        sql.record_warnings(conn, district.id, import_id, STUDENT_LOGINS, warnings)
    fields = LOGIN_FIELDS[devices]
    return DerivedBuild(
        STUDENT_LOGINS,
        district.id,
        import_id,
        rows,
        warnings,
        {
            "student_devices": devices,
            "chromebook_login_is": fields["chromebook"] or "not used",
            "other_device_login_is": fields["other_devices"] or "not used",
            **{problem: len(ids) for problem, ids in sorted(problems.items())},
        },
    )


def finding_text(table_name: str, check: str) -> str:
    """The words an admin reads for a stored warning (the check's name when it is not one of ours)."""
    texts = (
        FINDING_TEXT
        if table_name == CLASS_TEACHERS
        else {problem: f"students who cannot sign in: {text}" for problem, text in PROBLEM_TEXT.items()}
    )
    return texts.get(check, check)


BUILDERS = {CLASS_TEACHERS: build_class_teachers, STUDENT_LOGINS: build_student_logins}


def build_derived_tables(warehouse: Warehouse, district: District) -> dict[str, DerivedBuild]:
    """Both tables (after a sync outside Dagster, an approve, an undo)."""
    return {name: build(warehouse, district) for name, build in BUILDERS.items()}


def rebuild_after_review(
    warehouse: Warehouse, district: District, action: str
) -> tuple[dict[str, DerivedBuild], str]:
    """An approve or an undo changed the published roster outside a sync run: rebuild both tables so they
    match it again.  Never raises (the review action itself succeeded): the sentence says what happened,
    and how to catch up if the rebuild failed.  An undo that left nothing published empties them."""
    try:
        builds = build_derived_tables(warehouse, district)
    except NothingPublishedError:
        with sql.rebuilding(warehouse.engine) as conn:
            for name in BUILDERS:
                sql.clear_district(conn, name, district.id)
        return (
            {},
            f"derived tables emptied: district {district.id!r} has nothing published after the {action}",
        )
    except Exception as exc:  # noqa: BLE001 - reported; the approve/undo stands
        return {}, (
            f"derived tables NOT rebuilt after the {action}: {type(exc).__name__}: {exc}; materialize "
            f"class_teachers and student_logins for district {district.id!r} (its next sync also does)"
        )
    parts = [f"{b.table_name} {b.rows} rows ({b.warning_count} warning(s))" for b in builds.values()]
    import_id = next(iter(builds.values())).import_id
    return builds, f"derived tables rebuilt from import {import_id}: {', '.join(parts)}"
