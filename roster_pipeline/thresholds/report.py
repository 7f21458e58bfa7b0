"""What a threshold evaluation says, in the three forms its readers need.

The Dagster asset check reads ``passed`` and ``as_metadata()``, the UI and the "Check Your Data" email
show ``markdown()`` (worst offenders first, capped so a 300-school district stays readable), logs and
subjects use ``summary_line()``; ``table`` and ``violations`` keep everything for whoever wants more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import pandas as pd

from roster_pipeline.thresholds.rules import BELOW_MINIMUM, EXCEEDED, EXEMPT_FIRST_IMPORT, severity_order

Kind = Literal["change", "school"]


@dataclass(frozen=True)
class ThresholdReport:
    """The outcome of one district's change or school threshold checks.

    ``table`` has one row per (resource or school, measure) with ``count``, ``base`` (the denominator),
    ``pct``, ``threshold`` (NaN = no limit), ``min_count`` and ``status`` (OK, EXCEEDED,
    EXEMPT (first import), BELOW MINIMUM).  ``violations`` holds the EXCEEDED rows, worst first, each
    with a ``message`` naming the district, the resource or school and the measure.
    """

    district_id: str
    kind: Kind
    first_import: bool
    table: pd.DataFrame
    violations: pd.DataFrame

    @property
    def passed(self) -> bool:
        """True when nothing trips; BELOW MINIMUM and EXEMPT rows do not block the import."""
        return self.violations.empty

    def only(self, measures: set[str] | frozenset[str]) -> ThresholdReport:
        """The same report restricted to some measures, e.g. ``{"rejected_pct"}`` for a separate
        "valid records" check in the UI, so its markdown and summary speak only of those."""
        return replace(
            self,
            table=self.table[self.table["measure"].isin(measures)].reset_index(drop=True),
            violations=self.violations[self.violations["measure"].isin(measures)].reset_index(drop=True),
        )

    def _counts(self) -> dict[str, int]:
        status = self.table["status"]
        return {
            "rows_checked": int(len(self.table)),
            "violations": int(len(self.violations)),
            "below_minimum": int((status == BELOW_MINIMUM).sum()),
            "exempt_first_import": int((status == EXEMPT_FIRST_IMPORT).sum()),
        }

    def _label(self, row: pd.Series) -> str:
        if self.kind == "school":
            name = row.get("school_name")
            named = (
                f"{name} ({row['school_sourced_id']})"
                if isinstance(name, str) and name
                else row["school_sourced_id"]
            )
            return f"{named} {row['resource']}"
        return str(row["resource"])

    def summary_line(self) -> str:
        """One sentence for logs, run tags and email subjects."""
        what = "change threshold" if self.kind == "change" else "per-school threshold"
        exempt = "; first import: change thresholds exempt" if self.first_import else ""
        if self.kind == "school" and self.first_import:
            exempt = "; first import: per-school thresholds exempt"
        if self.passed:
            below = self._counts()["below_minimum"]
            note = f" ({below} above a % limit but below the minimum count)" if below else ""
            return f"district {self.district_id!r}: {what}s passed{note}{exempt}"
        worst = self.violations.iloc[0]
        more = f" and {len(self.violations) - 1} more" if len(self.violations) > 1 else ""
        return (
            f"district {self.district_id!r}: {len(self.violations)} {what}{_plural(len(self.violations))} "
            f"exceeded — worst: "
            f"{self._label(worst)} {worst['measure']} {_pct(worst['pct'])} > {_pct(worst['threshold'])} "
            f"({int(worst['count'])} rows){more}{exempt}"
        )

    def markdown(self, max_rows: int = 10) -> str:
        """A compact markdown table, worst first, at most ``max_rows`` rows.

        Rows without a limit, rows exempt on a first import and rows with nothing changed are left out
        (they are in ``table``); a footer says how many rows were cut.
        """
        rows = self.table[
            self.table["threshold"].notna()
            & (self.table["status"] != EXEMPT_FIRST_IMPORT)
            & ((self.table["count"] > 0) | (self.table["status"] != "OK"))
        ]
        rows = severity_order(rows)
        lines = [f"**{_escape(self.summary_line())}**", ""]
        if rows.empty:
            lines.append("_Nothing to compare: no changes against a limit._")
            return "\n".join(lines)
        if self.kind == "school":
            lines += [
                "| School | Resource | Measure | Drop | Before → after | % | Limit | Min | Status |",
                "|---|---|---|---:|---:|---:|---:|---:|---|",
            ]
        else:
            lines += [
                "| Resource | Measure | Count | Of | % | Limit | Min | Status |",
                "|---|---|---|---:|---:|---:|---:|---|",
            ]
        shown = rows.head(max_rows)
        for _, row in shown.iterrows():
            status = f"**{row['status']}**" if row["status"] == EXCEEDED else row["status"]
            if self.kind == "school":
                name = (
                    row["school_name"] if isinstance(row["school_name"], str) and row["school_name"] else ""
                )
                school = f"{name} ({row['school_sourced_id']})" if name else str(row["school_sourced_id"])
                cells = [
                    school,
                    row["resource"],
                    row["measure"],
                    f"{int(row['count']):,}",
                    f"{int(row['base']):,} → {int(row['after']):,}",
                    _pct(row["pct"]),
                    f"> {_pct(row['threshold'])}",
                    f"{int(row['min_count']):,}",
                    status,
                ]
            else:
                cells = [
                    row["resource"],
                    row["measure"],
                    f"{int(row['count']):,}",
                    f"{int(row['base']):,}",
                    _pct(row["pct"]),
                    f"> {_pct(row['threshold'])}",
                    f"{int(row['min_count']):,}",
                    status,
                ]
            lines.append("| " + " | ".join(_escape(str(c)) for c in cells) + " |")
        hidden = len(rows) - len(shown)
        if hidden:
            hidden_exceeded = int((rows.iloc[len(shown) :]["status"] == EXCEEDED).sum())
            lines += ["", f"_… {hidden} more row(s) not shown ({hidden_exceeded} of them exceeded)._"]
        return "\n".join(lines)

    def as_metadata(self, max_messages: int = 10) -> dict[str, str | int | float | bool]:
        """Plain values for Dagster check metadata (wrap ``markdown()`` yourself as MetadataValue.md)."""
        meta: dict[str, str | int | float | bool] = {
            "district_id": self.district_id,
            "check": self.kind,
            "passed": bool(self.passed),
            "first_import": bool(self.first_import),
            **self._counts(),
            "summary": self.summary_line(),
        }
        if not self.violations.empty:
            worst = self.violations.iloc[0]
            meta["worst_measure"] = str(worst["measure"])
            meta["worst_subject"] = self._label(worst)
            meta["worst_count"] = int(worst["count"])
            meta["worst_pct"] = round(float(worst["pct"]), 2)
            meta["worst_threshold"] = float(worst["threshold"])
            messages = list(self.violations["message"].head(max_messages))
            if len(self.violations) > max_messages:
                messages.append(f"… and {len(self.violations) - max_messages} more")
            meta["violation_messages"] = "\n".join(messages)
        return meta


def _pct(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "no limit"
    return f"{float(value):.2f}".rstrip("0").rstrip(".") + "%"


def _plural(n: int) -> str:
    return "" if n == 1 else "s"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
