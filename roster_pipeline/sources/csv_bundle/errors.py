"""The error a CSV bundle raises when it cannot be imported at all (a structural problem).

A bad *row* is not one of these: it is quarantined like any bad record.  A bundle whose zip, manifest,
file list, header or encoding is wrong is refused as a whole, and the message says where to look:
district, bundle, file, line and column, as far as they are known.
"""

from __future__ import annotations


class CsvBundleError(RuntimeError):
    """A bundle that cannot be imported; the message names the district, bundle, file, line and column."""

    def __init__(
        self,
        district_id: str,
        bundle: str,
        problem: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.district_id = district_id
        self.bundle = bundle
        self.file = file
        self.line = line
        self.column = column
        where = [f"district {district_id!r}", f"CSV bundle {bundle}"]
        if file is not None:
            where.append(file)
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {problem}")
