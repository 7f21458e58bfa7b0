"""Write a simulated district as a OneRoster 1.1 CSV bundle (a zip), bulk or delta.

Why: the ``csv_bundle`` import method must publish exactly what the REST import publishes for the same
district, and the only honest way to show it is to sync one simulated district both ways and compare
the published tables.  This is the inverse of ``roster_pipeline.sources.csv_bundle.mapping``: JSON
references become ``...SourcedId`` columns, lists comma-separated cells, ``userIds``
``{type:identifier}`` cells.

``bulk`` writes every record; by default with its ``status`` and ``dateLastModified`` (many SIS
exports fill them), with ``blank_bulk_metadata`` as the binding prescribes (blank, and records already
``tobedeleted`` left out, since a bulk file lists only what exists).  ``delta`` writes the records
modified after ``since`` (a ``dateLastModified`` string, e.g. a mutation's timestamp minus a moment),
tobedeleted ones included: a delta's way of saying deleted.  Files are written row by row into the zip.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from roster_pipeline.sources.csv_bundle.layout import FILES
from roster_pipeline.sources.csv_bundle.manifest import FileMode, manifest_text

from .district import Record, SimulatedDistrict

Cell = Callable[[Record], str]


def _text(field: str) -> Cell:
    return lambda record: "" if record.get(field) is None else str(record[field])


def _ref(field: str) -> Cell:
    return lambda record: str((record.get(field) or {}).get("sourcedId") or "")


def _refs(field: str) -> Cell:
    return lambda record: ",".join(str(r.get("sourcedId")) for r in record.get(field) or [])


def _list(field: str) -> Cell:
    return lambda record: ",".join(str(v) for v in record.get(field) or [])


def _user_ids(record: Record) -> str:
    return ",".join(f"{{{u.get('type', '')}:{u.get('identifier', '')}}}" for u in record.get("userIds") or [])


_SPECIAL: dict[str, dict[str, Cell]] = {
    "orgs": {"parentSourcedId": _ref("parent")},
    "academicSessions": {"parentSourcedId": _ref("parent")},
    "courses": {
        "schoolYearSourcedId": _ref("schoolYear"),
        "orgSourcedId": _ref("org"),
        "grades": _list("grades"),
        "subjects": _list("subjects"),
        "subjectCodes": _list("subjectCodes"),
    },
    "classes": {
        "courseSourcedId": _ref("course"),
        "schoolSourcedId": _ref("school"),
        "termSourcedIds": _refs("terms"),
        "grades": _list("grades"),
        "subjects": _list("subjects"),
        "subjectCodes": _list("subjectCodes"),
    },
    "users": {
        "orgSourcedIds": _refs("orgs"),
        "agentSourcedIds": _refs("agents"),
        "grades": _list("grades"),
        "userIds": _user_ids,
    },
    "enrollments": {
        "classSourcedId": _ref("class"),
        "schoolSourcedId": _ref("school"),
        "userSourcedId": _ref("user"),
    },
    "demographics": {},
}


def row_of(collection: str, record: Record, *, blank_metadata: bool = False) -> list[str]:
    """One record as the cells of its file, in the binding's column order."""
    special = _SPECIAL[collection]
    cells = []
    for column in FILES[collection].columns:
        if blank_metadata and column in ("status", "dateLastModified"):
            cells.append("")
            continue
        cells.append(special.get(column, _text(column))(record))
    return cells


def write_bundle(
    district: SimulatedDistrict,
    path: str | Path,
    *,
    mode: Literal["bulk", "delta"] = "bulk",
    since: str | None = None,
    blank_bulk_metadata: bool = False,
    collections: Iterable[str] | None = None,
) -> Path:
    """Write the district (or, for a delta, what changed after ``since``) as a bundle zip at ``path``.

    ``collections``: the files to deliver (default all seven); the others are marked absent.
    """
    if mode == "delta" and since is None:
        raise ValueError("a delta bundle needs 'since' (the dateLastModified it counts from)")
    wanted = list(FILES) if collections is None else list(collections)
    unknown = [c for c in wanted if c not in FILES]
    if unknown:
        raise ValueError(f"unknown bundle file(s) {unknown}; known: {', '.join(FILES)}")
    target = Path(path)
    modes: dict[str, FileMode] = {c: mode for c in wanted}
    with district.lock, zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("manifest.csv", manifest_text(modes))
        for collection in wanted:
            with (
                bundle.open(FILES[collection].name, "w") as member,
                io.TextIOWrapper(member, encoding="utf-8", newline="") as text,
            ):
                writer = csv.writer(text)
                writer.writerow(FILES[collection].columns)
                for record in _selected(
                    district.collections[collection].values(), mode, since, blank_bulk_metadata
                ):
                    writer.writerow(
                        row_of(collection, record, blank_metadata=mode == "bulk" and blank_bulk_metadata)
                    )
    return target


def _selected(
    records: Iterable[Record], mode: str, since: str | None, blank: bool
) -> Iterable[dict[str, Any]]:
    for record in records:
        if mode == "delta":
            if str(record.get("dateLastModified", "")) > str(since):
                yield record
        elif not (blank and record.get("status") == "tobedeleted"):
            yield record
