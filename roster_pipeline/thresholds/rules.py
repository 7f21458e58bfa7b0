"""Threshold rules as a Pandera schema built per evaluation, and the table they produce.

Thresholds differ per resource (registry overrides, rollover relaxations), so a rule cannot be a column
check with one constant bound.  Instead each rule is a *wide* check over a frame that carries, on every
row, the value, the count, and that row's own threshold and floor columns::

    deleted_pct:  not (deleted_pct > max_deleted_pct  and  deleted >= min_changes)

One ``pa.Check`` per rule, validated lazily, so every tripping (row, rule) pair comes back in
``failure_cases`` at once; those become the violations.  The same predicate gives the table its status.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

OK = "OK"
EXCEEDED = "EXCEEDED"
EXEMPT_FIRST_IMPORT = "EXEMPT (first import)"
BELOW_MINIMUM = "BELOW MINIMUM"
STATUSES: tuple[str, ...] = (EXCEEDED, BELOW_MINIMUM, OK, EXEMPT_FIRST_IMPORT)  # worst first

# "Exactly at the threshold passes" must survive float noise: 28/400*100 is 7.000000000000001.
EPSILON = 1e-9


@dataclass(frozen=True)
class Rule:
    """``pct`` above ``threshold`` with ``count`` at or above ``floor`` trips (all are column names).

    A NaN threshold means "no limit" (``max_added_pct: null``): NaN comparisons are False, so it never
    trips.  ``where`` restricts the rule to rows whose column equals a value (school rules per resource).
    ``on_first_import`` says whether the rule still applies when nothing has been published yet.
    """

    measure: str
    count: str
    base: str
    pct: str
    threshold: str
    floor: str
    on_first_import: bool
    where: tuple[str, str] | None = None

    def applies(self, df: pd.DataFrame) -> pd.Series:
        if self.where is None:
            return pd.Series(True, index=df.index)
        column, value = self.where
        return df[column] == value

    def over(self, df: pd.DataFrame) -> pd.Series:
        """The percentage is strictly above the threshold (the floor is not considered)."""
        return self.applies(df) & (df[self.pct] > df[self.threshold] + EPSILON)

    def trips(self, df: pd.DataFrame) -> pd.Series:
        return self.over(df) & (df[self.count] >= df[self.floor])

    def check(self) -> pa.Check:
        # ignore_na=False: a row whose threshold is NaN ("no limit") must still be evaluated (and pass).
        return pa.Check(lambda df: ~self.trips(df), name=self.measure, ignore_na=False)


def rule_schema(rules: list[Rule], name: str) -> pa.DataFrameSchema:
    """The district's threshold rules as one schema: one wide check per rule."""
    return pa.DataFrameSchema(checks=[rule.check() for rule in rules], name=name)


def tripped(frame: pd.DataFrame, rules: list[Rule], name: str) -> set[tuple[object, str]]:
    """(row label, measure) for every rule the frame trips, from one lazy validation."""
    if not rules or frame.empty:
        return set()
    try:
        rule_schema(rules, name).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases.dropna(subset=["index", "check_number"])
        return {
            (label, rules[int(number)].measure)
            for label, number in zip(cases["index"], cases["check_number"], strict=True)
        }
    return set()


def evaluate(
    frame: pd.DataFrame,
    rules: list[Rule],
    *,
    first_import: bool,
    keys: list[str],
    name: str,
    carry: tuple[str, ...] = (),
) -> pd.DataFrame:
    """The long table: one row per (subject, measure) a rule applies to, with its status.

    ``frame`` is wide (one row per subject, with threshold and floor columns); ``keys`` are the columns
    naming the subject (``resource``; or ``school_sourced_id``, ``school_name``, ``resource``);
    ``carry`` are further columns copied after ``base`` for the reader (a school's ``after``).
    """
    active = [rule for rule in rules if rule.on_first_import or not first_import]
    failures = tripped(frame, active, name)
    parts: list[pd.DataFrame] = []
    for rule in rules:
        rows = frame[rule.applies(frame)]
        if rows.empty:
            continue
        part = rows[keys].copy()
        part["measure"] = rule.measure
        part["count"] = rows[rule.count].astype("int64")
        part["base"] = rows[rule.base].astype("int64")
        for column in carry:
            part[column] = rows[column]
        part["pct"] = rows[rule.pct].astype("float64")
        part["threshold"] = rows[rule.threshold].astype("float64")
        part["min_count"] = rows[rule.floor].astype("int64")
        if rule not in active:
            status = pd.Series(EXEMPT_FIRST_IMPORT, index=rows.index)
        else:
            hit = pd.Series([(label, rule.measure) in failures for label in rows.index], index=rows.index)
            status = pd.Series(
                np.where(hit, EXCEEDED, np.where(rule.over(rows), BELOW_MINIMUM, OK)), index=rows.index
            )
        part["status"] = status
        parts.append(part)
    columns = [*keys, "measure", "count", "base", *carry, "pct", "threshold", "min_count", "status"]
    if not parts:
        return _empty(columns, keys)
    return pd.concat(parts).sort_index(kind="stable").reset_index(drop=True)[columns]


def _empty(columns: list[str], keys: list[str]) -> pd.DataFrame:
    dtypes = {
        "count": "int64",
        "base": "int64",
        "after": "int64",
        "pct": "float64",
        "threshold": "float64",
        "min_count": "int64",
    }
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "object")) for c in columns})


def severity_order(table: pd.DataFrame) -> pd.DataFrame:
    """Worst first: status (EXCEEDED, BELOW MINIMUM, OK, EXEMPT), then how many times over its
    threshold the row is (31% against 10% is worse than 80% against 75%), then the absolute count."""
    if table.empty:
        return table.reset_index(drop=True).copy()
    rank = table["status"].map({s: i for i, s in enumerate(STATUSES)}).fillna(len(STATUSES))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(
            table["threshold"].isna(),
            -np.inf,
            np.where(
                table["threshold"] > 0,
                table["pct"] / table["threshold"],
                np.where(table["pct"] > 0, np.inf, 0.0),
            ),
        )
    order = pd.DataFrame({"rank": rank.to_numpy(), "ratio": -ratio, "count": -table["count"].to_numpy()})
    positions = order.sort_values(["rank", "ratio", "count"], kind="stable").index
    return table.iloc[positions].reset_index(drop=True)
