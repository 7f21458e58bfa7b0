"""Validate one batch of records against its resource's pandera model and split it into valid records
and Rejects.

This runs on every page as it arrives, before staging, so a failing record is quarantined and never
reaches a published table.  The model is run with ``lazy=True`` so every failure of every record is
collected in one pass; each failure case becomes one Reject per (record, field, check), and any record
with an error is left out of ``valid`` — nothing is dropped silently.  A value no warehouse can store
(a NUL character, undecodable text: ``roster_pipeline.records.unstorable``) quarantines its record the same way,
with the field named, instead of failing the batch's COPY and with it the district.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from roster_pipeline.records.catalogue import resource
from roster_pipeline.records.rejects import Reject
from roster_pipeline.records.unstorable import CHECKS as UNSTORABLE_CHECKS
from roster_pipeline.records.unstorable import all_storable, problems, visible
from roster_pipeline.registry.districts import District

from .frames import FrameColumn, as_text, build_frame, frame_columns, served_value
from .geopandas_probe import remember_that_geopandas_is_absent
from .messages import clip, explain, record_label
from .schemas import DATE_ORDER, SCHEMAS
from .warnings import record_warnings

remember_that_geopandas_is_absent()

# Short names our custom checks carry already; pandera's built-ins are mapped in ``_check_name``.
OWN_CHECKS = frozenset({"datetime_format", "date_format", "school_year_format", "email_format", "date_order"})
CHECKS = (
    "required",
    "enum",
    "boolean_string",
    "date_format",
    "datetime_format",
    "school_year_format",
    "email_format",
    "unique",
    "date_order",
    *UNSTORABLE_CHECKS,
)


@dataclass
class BatchValidation:
    """The outcome for one batch: stage ``valid``, quarantine ``rejects``, report ``warnings``.

    ``rejected`` is how many input records were held back (a record failing three checks counts once;
    ``len(valid) + rejected == len(records)`` always).
    """

    valid: list[dict[str, Any]]
    rejects: list[Reject] = field(default_factory=list)
    warnings: list[Reject] = field(default_factory=list)
    rejected: int = 0


def _check_name(pandera_check: str, metadata: Mapping[str, Any]) -> str:
    if pandera_check in OWN_CHECKS:
        return pandera_check
    if pandera_check == "not_nullable":
        return "required"
    if "uniqueness" in pandera_check:
        return "unique"
    # A built-in check (isin, ge ...) on a column: the column says what it stands for.
    return str(metadata.get("check") or pandera_check)


def _failures(model: type[pa.DataFrameModel], frame: pd.DataFrame) -> pd.DataFrame | None:
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return exc.failure_cases
    return None


def validate_batch(
    district: District, resource_name: str, records: Sequence[dict[str, Any]]
) -> BatchValidation:
    """Check a batch of OneRoster 1.1 records of one resource (snake_case or collection name)."""
    name = resource(resource_name).name
    if not records:
        return BatchValidation(valid=[])
    frame = build_frame(name, records)
    schema = SCHEMAS[name].to_schema()
    columns: dict[str, FrameColumn] = {c.name: c for c in frame_columns(name)}
    failures = _failures(SCHEMAS[name], frame)

    failed = np.zeros(len(records), dtype=bool)
    found: list[tuple[int, Reject]] = []
    if failures is not None:
        seen: set[tuple[int, str, str]] = set()
        for column_name, pandera_check, failure_case, index in failures[
            ["column", "check", "failure_case", "index"]
        ].itertuples(index=False, name=None):
            if index is None or (isinstance(index, float) and np.isnan(index)):
                # A failure not tied to a record would be a defect in a check: never swallow it.
                raise RuntimeError(
                    f"district {district.id!r}, {name}: check {pandera_check!r} failed without a row: "
                    f"{failure_case!r}"
                )
            position = int(index)
            column = schema.columns.get(column_name)
            check = _check_name(str(pandera_check), (column.metadata or {}) if column is not None else {})
            if check == "date_order":
                column_name = DATE_ORDER[name][1]
            key = (position, str(column_name), check)
            if key in seen:
                continue
            seen.add(key)
            failed[position] = True
            reject = _reject(
                district.id, name, records[position], position, columns[column_name], check, schema
            )
            found.append((position, reject))
    if not all_storable(list(records)):
        for position, record in enumerate(records):
            for path, check, shown in problems(record):
                failed[position] = True
                found.append(
                    (position, _unstorable_reject(district.id, name, record, position, path, check, shown))
                )
    found.sort(key=lambda item: item[0])  # stable: batch order, then the order pandera reported
    rejects = [reject for _, reject in found]
    valid = [records[int(i)] for i in np.flatnonzero(~failed)] if failed.any() else list(records)
    warnings = record_warnings(district, name, frame, ~failed, records)
    return BatchValidation(valid=valid, rejects=rejects, warnings=warnings, rejected=int(failed.sum()))


def _sourced_id(record: Mapping[str, Any]) -> str | None:
    """The record's sourcedId as a Reject names it (a NUL or undecodable byte in it shown visibly)."""
    sourced_id = as_text(record.get("sourcedId"))
    return None if sourced_id is None else visible(sourced_id)


def _unstorable_reject(
    district_id: str,
    resource_name: str,
    record: Mapping[str, Any],
    position: int,
    path: str,
    check: str,
    shown: str,
) -> Reject:
    """A value no warehouse can store (NUL, undecodable text, a huge number): the record is quarantined
    with the field named instead of failing the whole batch's COPY (see ``roster_pipeline.records.unstorable``)."""
    sourced_id = _sourced_id(record)
    label = record_label(district_id, resource_name, sourced_id, position)
    return Reject(
        resource=resource_name,
        sourced_id=sourced_id,
        field=path,
        check=check,
        value=clip(shown),
        message=f"{label}: {explain(check, path, clip(shown))}",
        severity="error",
        raw=dict(record),
    )


def _reject(
    district_id: str,
    resource_name: str,
    record: Mapping[str, Any],
    position: int,
    column: FrameColumn,
    check: str,
    schema: pa.DataFrameSchema,
) -> Reject:
    sourced_id = _sourced_id(record)
    value = served_value(record, column)
    value = None if value is None else visible(value)
    label = record_label(district_id, resource_name, sourced_id, position)
    if check == "date_order":
        start_field, end_field = DATE_ORDER[resource_name]
        explanation = (
            f"field {start_field!r} ({as_text(record.get(start_field))}) must not be after "
            f"field {end_field!r} ({value})"
        )
    else:
        metadata = schema.columns[column.name].metadata or {}
        explanation = explain(
            check, column.name, value, kind=column.kind, allowed=metadata.get("allowed", ())
        )
    return Reject(
        resource=resource_name,
        sourced_id=sourced_id,
        field=column.name,
        check=check,
        value=clip(value),
        message=f"{label}: {explanation}",
        severity="error",
        raw=dict(record),
    )
