"""The two inputs of the threshold checks, as Pandera models, validated before any rule runs.

The change and school summaries are built from the warehouse by another part of the pipeline.  If one
is malformed (a missing column, a negative count, a fraction where a percentage was meant), comparing it
with thresholds would silently pass a bad import, so a malformed summary is a loud
``ThresholdInputError`` naming the district, the summary and each problem — never a quiet pass.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from roster_pipeline.records.catalogue import RESOURCES_BY_NAME

# How far a given percentage may be from 100*count/base, in percentage points.  Wide enough for a
# builder that rounds to one decimal, narrow enough to catch a fraction (0.31) sent instead of 31.0.
PCT_TOLERANCE = 0.05

SCHOOL_RESOURCES: tuple[str, ...] = ("users", "enrollments")


class ThresholdInputError(ValueError):
    """A change or school summary does not have the agreed shape; the message lists every problem."""


def _numeric(df: pd.DataFrame, columns: Iterable[str]) -> bool:
    """True when all columns exist and are numeric (otherwise the column checks already report it)."""
    return all(c in df.columns and pd.api.types.is_numeric_dtype(df[c]) for c in columns)


def pct_matches(df: pd.DataFrame, count: str, base: str, pct: str) -> pd.Series:
    """``pct`` is 100*count/base, and 0.0 where base is 0, within ``PCT_TOLERANCE``."""
    if not _numeric(df, (count, base, pct)):
        return pd.Series(True, index=df.index)
    denominator = df[base].where(df[base] > 0)
    expected = (100.0 * df[count] / denominator).fillna(0.0)
    return (df[pct] - expected).abs() <= PCT_TOLERANCE


class ChangeSummary(pa.DataFrameModel):
    """One row per resource: what publishing the staged snapshot would change.

    Counts are non-negative integers.  ``added_pct``/``updated_pct``/``deleted_pct`` are percentages
    (not fractions) of ``published_before`` and ``rejected_pct`` of ``fetched``, 0.0 when the base is 0;
    they may exceed 100 (a district can more than double).
    """

    resource: Series[str] = pa.Field(isin=list(RESOURCES_BY_NAME), unique=True)
    published_before: Series[int] = pa.Field(ge=0)
    fetched: Series[int] = pa.Field(ge=0)
    added: Series[int] = pa.Field(ge=0)
    updated: Series[int] = pa.Field(ge=0)
    deleted: Series[int] = pa.Field(ge=0)
    unchanged: Series[int] = pa.Field(ge=0)
    tobedeleted: Series[int] = pa.Field(ge=0)
    rejected: Series[int] = pa.Field(ge=0)
    added_pct: Series[float] = pa.Field(ge=0)
    updated_pct: Series[float] = pa.Field(ge=0)
    deleted_pct: Series[float] = pa.Field(ge=0)
    rejected_pct: Series[float] = pa.Field(ge=0)

    class Config:
        coerce = True  # SQL drivers hand back int32/Int64/Decimal; the values matter, not the dtype
        strict = False  # an extra column is harmless; only the agreed ones are read

    @pa.dataframe_check(error="added_pct must be 100*added/published_before (0.0 when nothing published)")
    def added_pct_is_percent_of_published(cls, df: pd.DataFrame) -> Series[bool]:
        return pct_matches(df, "added", "published_before", "added_pct")

    @pa.dataframe_check(error="updated_pct must be 100*updated/published_before (0.0 when nothing published)")
    def updated_pct_is_percent_of_published(cls, df: pd.DataFrame) -> Series[bool]:
        return pct_matches(df, "updated", "published_before", "updated_pct")

    @pa.dataframe_check(error="deleted_pct must be 100*deleted/published_before (0.0 when nothing published)")
    def deleted_pct_is_percent_of_published(cls, df: pd.DataFrame) -> Series[bool]:
        return pct_matches(df, "deleted", "published_before", "deleted_pct")

    @pa.dataframe_check(error="rejected_pct must be 100*rejected/fetched (0.0 when nothing fetched)")
    def rejected_pct_is_percent_of_fetched(cls, df: pd.DataFrame) -> Series[bool]:
        return pct_matches(df, "rejected", "fetched", "rejected_pct")


class SchoolSummary(pa.DataFrameModel):
    """One row per (school, resource) for users and enrollments: how much each school would lose.

    ``drop`` is ``published_before - after``; a builder may report growth as a negative drop or clip it
    to 0, both are accepted.  ``drop_pct`` is 100*drop/published_before (0.0 for a school with nothing
    published yet).
    """

    school_sourced_id: Series[str] = pa.Field(str_length={"min_value": 1})
    school_name: Series[str] = pa.Field(nullable=True)
    resource: Series[str] = pa.Field(isin=list(SCHOOL_RESOURCES))
    published_before: Series[int] = pa.Field(ge=0)
    after: Series[int] = pa.Field(ge=0)
    drop: Series[int]
    drop_pct: Series[float]

    class Config:
        coerce = True
        strict = False
        unique = ["school_sourced_id", "resource"]

    @pa.dataframe_check(error="drop must be published_before - after (or 0 when the school grew)")
    def drop_is_published_minus_after(cls, df: pd.DataFrame) -> Series[bool]:
        if not _numeric(df, ("published_before", "after", "drop")):
            return pd.Series(True, index=df.index)
        exact = df["drop"] == df["published_before"] - df["after"]
        clipped_growth = (df["drop"] == 0) & (df["after"] >= df["published_before"])
        return exact | clipped_growth

    @pa.dataframe_check(error="drop_pct must be 100*drop/published_before (0.0 when nothing published)")
    def drop_pct_is_percent_of_published(cls, df: pd.DataFrame) -> Series[bool]:
        return pct_matches(df, "drop", "published_before", "drop_pct")


def _subject(row_label: object, frame: pd.DataFrame, key_columns: tuple[str, ...]) -> str:
    """'resource 'users'' / 'school 'sch-1' enrollments' for a failing row, or its position."""
    if row_label is None or (isinstance(row_label, float) and np.isnan(row_label)):
        return ""
    try:
        row = frame.loc[row_label]
    except (KeyError, TypeError):
        return f" (row {row_label})"
    parts = [f"{col} {row[col]!r}" for col in key_columns if col in frame.columns]
    return f" ({', '.join(parts)})" if parts else f" (row {row_label})"


def validate_input(
    frame: pd.DataFrame,
    model: type[pa.DataFrameModel],
    *,
    what: str,
    district_id: str,
    key_columns: tuple[str, ...],
    max_problems: int = 20,
) -> pd.DataFrame:
    """Validate ``frame`` lazily against ``model``; return the coerced frame or raise ThresholdInputError."""
    if not isinstance(frame, pd.DataFrame):
        raise ThresholdInputError(
            f"district {district_id!r}: the {what} must be a pandas DataFrame, got {type(frame).__name__}"
        )
    try:
        return model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        problems = _describe(exc.failure_cases, frame, key_columns)
    shown = problems[:max_problems]
    more = f"\n  … and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    raise ThresholdInputError(
        f"district {district_id!r}: the {what} is malformed ({len(problems)} problem(s)); "
        f"expected columns {', '.join(model.to_schema().columns)}:\n  " + "\n  ".join(shown) + more
    )


def _describe(failures: pd.DataFrame, frame: pd.DataFrame, key_columns: tuple[str, ...]) -> list[str]:
    """One line per problem.  A dataframe-wide check lists every column of a failing row: keep one."""
    problems: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for case in failures.itertuples(index=False):
        key: tuple[str, ...]
        check, column, value, index = str(case.check), str(case.column), case.failure_case, case.index
        subject = _subject(index, frame, key_columns)
        if check == "column_in_dataframe":
            key, line = ("missing", str(value)), f"missing column {value!r}"
        elif case.schema_context == "DataFrameSchema":
            if index is None or (isinstance(index, float) and np.isnan(index)):
                continue  # the check could not run (a missing/untyped column, reported on its own)
            key, line = (check, str(index)), f"{check}{subject}"
        else:
            key = (column, check, str(index))
            line = f"column {column!r}{subject}: {check} failed (got {value!r})"
        if key not in seen:
            seen.add(key)
            problems.append(line)
    # Missing columns first: they usually explain the rest.
    return sorted(problems, key=lambda line: not line.startswith("missing column"))
