"""The OneRoster 1.1 vocabularies and value formats, as vectorised checks over pandas Series.

Kept apart from the schemas so the per-resource models read as a list of fields, and so each format is
written (and tested) once.  Every function takes the non-null values of one column (pandera drops
nulls before running a check) and returns a boolean Series; none loops over rows in Python, because a
million enrollments pass through them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pandas as pd

STATUSES = ("active", "tobedeleted")
ORG_TYPES = ("department", "district", "local", "national", "school", "state")
SESSION_TYPES = ("gradingPeriod", "semester", "schoolYear", "term")
ROLES = ("administrator", "aide", "guardian", "parent", "proctor", "relative", "student", "teacher")
CLASS_TYPES = ("homeroom", "scheduled")
SEXES = ("male", "female")
BOOLEAN_STRINGS = ("true", "false")

_DATE = r"\d{4}-\d{2}-\d{2}"
# UTC only: "Z" or an explicit +00:00 offset; fractional seconds optional (IC sends milliseconds).
_DATETIME = _DATE + r"T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|\+00:00)"
SCHOOL_YEAR = r"\d{4}"
# Deliberately simple "looks like an address" syntax: one @, no spaces, a dotted domain of DNS labels.
EMAIL = (
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)

_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _as_text(values: pd.Series) -> pd.Series:
    # Values are str after extraction; astype guards against a stray number reaching .str accessors.
    return values if values.dtype == object else values.astype(str)


def on_distinct(check: Callable[[pd.Series], pd.Series]) -> Callable[[pd.Series], pd.Series]:
    """Run a per-value check once per distinct value and broadcast the verdicts back.

    A batch holds few distinct dates (every enrollment of a term shares its begin/end dates) and
    ``pd.factorize`` is a C hash pass, so regex work drops from one per row to one per distinct value.
    """

    @functools.wraps(check)
    def distinct(values: pd.Series) -> pd.Series:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        if len(uniques) == len(values):
            return check(values)
        verdicts = check(pd.Series(uniques, dtype=object)).to_numpy(dtype=bool)
        result = np.zeros(len(values), dtype=bool)
        known = codes >= 0
        result[known] = verdicts[codes[known]]
        return pd.Series(result, index=values.index)

    return distinct


def _matches(values: pd.Series, pattern: str) -> pd.Series:
    return _as_text(values).str.fullmatch(pattern).fillna(False).astype(bool)


def _digits(values: pd.Series, width: int) -> np.ndarray:
    """The first ``width`` characters of each string as a (rows, width) array of code points - '0'.

    numpy's fixed-width unicode dtype stores one uint32 per character, so once a regex has proved the
    shape, numbers are read from fixed positions with array arithmetic instead of per-row parsing.
    """
    fixed = np.array(values.tolist(), dtype=f"U{width}")
    return fixed.view(np.uint32).reshape(len(fixed), width).astype(np.int64) - 48


def _number(digits: np.ndarray, start: int, length: int) -> np.ndarray:
    result = np.zeros(len(digits), dtype=np.int64)
    for offset in range(start, start + length):
        result = result * 10 + digits[:, offset]
    return result


def _real_day(digits: np.ndarray) -> np.ndarray:
    """True where the YYYY-MM-DD at the start of each row exists on the calendar.

    No datetime64 range limit, so an SIS's open-ended 9999-12-31 passes.
    """
    y, m, d = _number(digits, 0, 4), _number(digits, 5, 2), _number(digits, 8, 2)
    month_ok = (m >= 1) & (m <= 12)
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    last = _DAYS_IN_MONTH[np.clip(m, 1, 12) - 1] + ((m == 2) & leap)
    return month_ok & (d >= 1) & (d <= last)


@on_distinct
def is_date(values: pd.Series) -> pd.Series:
    """``YYYY-MM-DD`` and a day that exists (2027-02-29 fails)."""
    result = _matches(values, _DATE)
    if result.any():
        result[result] = _real_day(_digits(values[result], 10))
    return result


@on_distinct
def is_utc_datetime(values: pd.Series) -> pd.Series:
    """ISO-8601 date-time in UTC (``2026-08-01T12:00:00.000Z``) with a real date and clock time."""
    result = _matches(values, _DATETIME)
    if result.any():
        digits = _digits(values[result], 19)
        clock = (_number(digits, 11, 2) < 24) & (_number(digits, 14, 2) < 60) & (_number(digits, 17, 2) < 60)
        result[result] = _real_day(digits) & clock
    return result


@on_distinct
def is_school_year(values: pd.Series) -> pd.Series:
    return _matches(values, SCHOOL_YEAR)


@on_distinct
def is_email(values: pd.Series) -> pd.Series:
    return _matches(values, EMAIL)


def not_after(start: pd.Series, end: pd.Series) -> pd.Series:
    """False only where both are well-formed dates and start > end (bad formats are reported elsewhere).

    ``YYYY-MM-DD`` strings order like the dates they spell, so a string comparison is exact.
    """
    both = start.notna() & end.notna()
    result = pd.Series(True, index=start.index)
    if both.any():
        s, e = start[both], end[both]
        comparable = is_date(s) & is_date(e)
        later = (s.astype(str) > e.astype(str)).to_numpy(dtype=bool)
        result[both] = ~(comparable.to_numpy(dtype=bool) & later)
    return result
