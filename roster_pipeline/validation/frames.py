"""A batch of OneRoster records → the column-wise DataFrame its pandera model validates.

Built column by column from the model's own column list (one list comprehension per field), so adding
a field to a model is the only change needed, and the per-row Python work is a handful of ``dict.get``
calls per record.  Values are normalised the way the warehouse stores them (JSON booleans/numbers as
text) and blank strings become missing, so ``""`` fails a required field instead of passing it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .schemas import SCHEMAS


@dataclass(frozen=True)
class FrameColumn:
    name: str  # column in the frame = field name reported ("class.sourcedId", "terms", "email")
    source: str  # key read from the record ("class")
    kind: str  # text | ref | refs


@cache
def frame_columns(resource_name: str) -> tuple[FrameColumn, ...]:
    """The columns of a resource's frame, read from its pandera model."""
    schema = SCHEMAS[resource_name].to_schema()
    return tuple(
        FrameColumn(name, (col.metadata or {}).get("source", name), (col.metadata or {}).get("kind", "text"))
        for name, col in schema.columns.items()
    )


def as_text(value: Any) -> str | None:
    """A served value as the text the warehouse stores; blank → None (missing)."""
    if value is None:
        return None
    if value.__class__ is str:
        return value if value.strip() else None
    if isinstance(value, bool):  # some SIS send JSON booleans where 1.1 says "true"/"false"
        return "true" if value else "false"
    if isinstance(value, dict | list):
        try:
            return orjson.dumps(value).decode()
        except (orjson.JSONEncodeError, TypeError):  # undecodable text or a huge number inside: still shown
            return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def ref_id(value: Any) -> str | None:
    """The sourcedId of a ``{href, sourcedId, type}`` reference; None when absent or malformed."""
    if isinstance(value, Mapping):
        return as_text(value.get("sourcedId"))
    return None


def ref_count(value: Any) -> int:
    """How many references a list holds, or 0 unless it is a list of well-formed references."""
    if not isinstance(value, list):
        return 0
    for item in value:
        if not isinstance(item, Mapping) or as_text(item.get("sourcedId")) is None:
            return 0
    return len(value)


def _texts(values: list[Any]) -> list[str | None]:
    # Fast path inline: almost every value is already a non-blank str (or None for optional fields).
    return [
        v if v.__class__ is str and v and not v.isspace() else (None if v is None else as_text(v))
        for v in values
    ]


def build_frame(resource_name: str, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per record (index = position in the batch), one column per validated field."""
    data: dict[str, Any] = {}
    for column in frame_columns(resource_name):
        key = column.source
        values = [r.get(key) for r in records]
        if column.kind == "ref":
            ids = [v.get("sourcedId") if v.__class__ is dict else None for v in values]
            data[column.name] = np.array(_texts(ids), dtype=object)
        elif column.kind == "refs":
            data[column.name] = np.array([ref_count(v) for v in values], dtype=np.int64)
        else:
            data[column.name] = np.array(_texts(values), dtype=object)
    return pd.DataFrame(data, index=pd.RangeIndex(len(records)), copy=False)


def served_value(record: Mapping[str, Any], column: FrameColumn) -> str | None:
    """The offending value as served, for a Reject (a malformed reference shows what was sent)."""
    raw = record.get(column.source)
    if column.kind == "ref":
        found = ref_id(raw)
        return found if found is not None else as_text(raw)
    return as_text(raw)
