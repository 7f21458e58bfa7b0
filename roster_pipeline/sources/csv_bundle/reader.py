"""Reading one OneRoster 1.1 CSV bundle (a zip) as a ``RosterSource``.

Streaming: each file is read straight out of the zip, row by row (``csv`` over ``io.TextIOWrapper``
over the zip member), and handed out in batches of ``batch_size`` records, so a million-row
enrollments.csv never sits in memory whole.  The only extra pass is over orgs.csv and
academicSessions.csv (small files) to derive the ``children`` references the JSON binding carries and
the CSV does not.

What is refused, what is quarantined:

* Structural problems refuse the bundle (``CsvBundleError``, naming district, bundle, file, line and
  column): not a zip, no or bad manifest.csv, a delivered file missing from the zip, a header without a
  required column or with a column twice, a file that is not UTF-8 (a UTF-8 BOM is fine), a resource the
  manifest marks ``absent`` although the district imports it.
* A bad row is a record-level problem (GUIDE §6): a row with the wrong number of cells, without a
  sourcedId, or with a cell that cannot be mapped, is quarantined with its file, line and column
  (``CsvBatch.row_rejects``); a row whose values fail the checks (a bad date, a bad byte) is
  quarantined by the sync's validation, and ``CsvBatch.locate`` adds file, line and column to the
  message.  The same sourcedId twice in a file is handled as the REST client handles it: an identical
  repeat is staged once, different copies are all quarantined.

``since`` is ignored: a bundle holds what the district exported, and its manifest (bulk or delta)
decides the import's mode (``delivered_mode``), not the run's request.
"""

from __future__ import annotations

import csv
import io
import time
import zipfile
from collections.abc import Generator, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, Literal

from roster_pipeline.oneroster.paging import Batch, RecordIssue, SeenRecords
from roster_pipeline.oneroster.stats import FetchStats
from roster_pipeline.records.catalogue import resource
from roster_pipeline.records.rejects import Reject
from roster_pipeline.records.unstorable import visible

from .errors import CsvBundleError
from .layout import FILES, MANIFEST, CsvFile, csv_column
from .manifest import Manifest, ManifestProblem, parse_manifest
from .mapping import CHILD_REFS, RowProblem, map_row

Record = dict[str, Any]
ROW_CHECKS = ("column_count", "required", "csv_format")


class CsvBatch(Batch):
    """A batch of records from one CSV file, knowing the line each came from.

    ``row_rejects``: rows that could not become records at all (wrong cell count, no sourcedId, an
    unmappable cell), to quarantine as they are.  ``locate`` puts file, line and column into a Reject
    the sync's checks made of one of this batch's records.
    """

    def __init__(
        self,
        records: list[Record],
        issues: list[RecordIssue],
        file: str,
        lines: dict[str, int],
        row_rejects: list[Reject],
    ) -> None:
        super().__init__(records, issues)
        self.file = file
        self.lines = lines
        self.row_rejects = row_rejects

    def locate(self, reject: Reject) -> Reject:
        line = self.lines.get(reject.sourced_id or "")
        if line is None:
            return reject
        where = f"{self.file} line {line}, column {csv_column(reject.field)!r}"
        return replace(reject, message=f"{where}: {reject.message}")


def _timestamp(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class CsvBundleSource:
    """One district's roster from one OneRoster 1.1 CSV zip. Use as a context manager."""

    def __init__(self, district_id: str, bundle: str | Path, batch_size: int = 5000) -> None:
        self.district_id = district_id
        self.path = Path(bundle)
        self.batch_size = max(1, int(batch_size))
        self._zip: zipfile.ZipFile | None = None
        self._manifest: Manifest | None = None
        self._stats: dict[str, FetchStats] = {}
        self._headers: dict[str, list[str]] = {}
        self.default_stamp = ""

    def __repr__(self) -> str:
        return f"CsvBundleSource(district_id={self.district_id!r}, bundle={str(self.path)!r})"

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> CsvBundleSource:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        """Open the zip and check its structure: manifest, delivered files, headers (not the rows)."""
        try:
            stat = self.path.stat()
            self._zip = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise self.error("the bundle file does not exist") from None
        except zipfile.BadZipFile:
            raise self.error("not a zip file (or an incomplete one)") from None
        except OSError as exc:
            raise self.error(f"cannot read the bundle: {exc.strerror or exc}") from None
        # Bulk files leave dateLastModified blank; their records carry the bundle's own time instead.
        self.default_stamp = _timestamp(datetime.fromtimestamp(stat.st_mtime, UTC))
        try:
            self._manifest = self._read_manifest()
            for collection in self._manifest.delivered:
                self._headers[collection] = self._check_header(FILES[collection])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    # ------------------------------------------------------------------ RosterSource

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            raise RuntimeError(f"{self!r} is not open; use it as a context manager")
        return self._manifest

    @property
    def delivered_mode(self) -> Literal["full", "delta"]:
        """The import mode the bundle calls for (see ``roster_pipeline.pipeline.sync_mode.decide_mode``)."""
        return self.manifest.sync_mode

    def iter_batches(self, name: str, since: datetime | None = None) -> Iterator[list[Record]]:
        """Yield the resource's records in batches (``CsvBatch``); ``since`` is ignored (see module doc)."""
        spec = FILES[resource(name).collection]
        mode = self.manifest.mode_of(spec.collection)
        if mode == "absent":
            raise self.error(
                f"{MANIFEST} marks {spec.manifest_key} absent: {spec.collection} is not delivered, and the district "
                "imports it; export it (bulk or delta), or switch the resource off in the registry",
                file=MANIFEST,
            )
        stats = FetchStats(district_id=self.district_id, endpoint=f"{self.path.name}:{spec.name}")
        self._stats[spec.collection] = stats
        return self._records(spec, stats)

    def stats_for(self, name: str) -> FetchStats:
        collection = resource(name).collection
        stats = self._stats.get(collection)
        if stats is None:
            raise KeyError(f"district {self.district_id!r}: no read of {collection}.csv yet")
        return stats.snapshot()

    def current_school_year(self, today: date | None = None) -> int | None:
        """The ending year of the active schoolYear session containing today (else the latest), or None."""
        if self.manifest.mode_of("academicSessions") == "absent":
            return None
        today = today or datetime.now(UTC).date()
        years: list[tuple[int, str, str]] = []
        for _, row in self._rows(FILES["academicSessions"]):
            if row.get("type", "").strip() != "schoolYear" or row.get("status", "").strip() == "tobedeleted":
                continue
            try:
                years.append(
                    (int(row.get("schoolYear", "").strip()), row.get("startDate", ""), row.get("endDate", ""))
                )
            except ValueError:
                continue
        if not years:
            return None
        for year, start, end in years:
            if start.strip() <= today.isoformat() <= end.strip():
                return year
        return max(year for year, _, _ in years)

    # ------------------------------------------------------------------ reading

    def error(
        self, problem: str, *, file: str | None = None, line: int | None = None, column: str | None = None
    ) -> CsvBundleError:
        return CsvBundleError(self.district_id, self.path.name, problem, file=file, line=line, column=column)

    def _open_member(self, file: str) -> IO[bytes]:
        assert self._zip is not None
        try:
            return self._zip.open(file)
        except KeyError:
            raise self.error(
                f"the manifest delivers {file} but the zip has no such file", file=file
            ) from None

    def _text(self, file: str) -> tuple[io.TextIOWrapper, IO[bytes]]:
        """The member as text: UTF-8 with an optional BOM; a byte that is not UTF-8 is kept (surrogateescape)
        so that its row, not the file, is quarantined with the field named."""
        raw = self._open_member(file)
        head = raw.read(4)
        if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[:4] in (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00"):
            raw.close()
            raise self.error(
                "the file is UTF-16/UTF-32, not UTF-8; export the bundle as UTF-8", file=file, line=1
            )
        raw.close()
        raw = self._open_member(file)
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        return text, raw

    def _lines(self, file: str) -> Generator[tuple[int, list[str]], None, None]:
        """(first line of the row, cells) for every row, the header included; blank lines skipped."""
        text, raw = self._text(file)
        try:
            reader = csv.reader(text, strict=True)
            line = 1
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise self.error(f"not readable as CSV: {exc}", file=file, line=line) from None
                start, line = line, reader.line_num + 1
                if cells:
                    yield start, cells
        finally:
            text.close()
            raw.close()

    def _read_manifest(self) -> Manifest:
        try:
            return parse_manifest(self._checked_lines(MANIFEST))
        except ManifestProblem as exc:
            raise self.error(str(exc), file=MANIFEST, line=exc.line, column=exc.column) from None

    def _checked_lines(self, file: str) -> Iterator[tuple[int, list[str]]]:
        """``_lines`` for a file that must be UTF-8 throughout (the manifest)."""
        for line, cells in self._lines(file):
            for index, cell in enumerate(cells):
                if cell != visible(cell):
                    raise self.error(
                        f"not UTF-8 text: {visible(cell)!r}", file=file, line=line, column=str(index + 1)
                    )
            yield line, cells

    def _check_header(self, spec: CsvFile) -> list[str]:
        rows = self._lines(spec.name)
        try:
            first = next(rows, None)
        finally:
            rows.close()  # closes the zip member now, not when the generator is collected
        if first is None:
            raise self.error("the file is empty; expected a header row", file=spec.name, line=1)
        line, header = first
        header = [h.strip() for h in header]
        for index, name in enumerate(header):
            if name != visible(name):
                raise self.error(
                    f"the header is not UTF-8 text ({visible(name)!r}); export the bundle as UTF-8",
                    file=spec.name,
                    line=line,
                    column=str(index + 1),
                )
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise self.error("the header names this column twice", file=spec.name, line=line, column=name)
            seen.add(name)
        missing = [c for c in spec.required if c not in seen]
        if missing:
            raise self.error(
                f"the header lacks required column(s) {', '.join(missing)} (OneRoster 1.1 CSV binding; "
                f"header given: {','.join(header)})",
                file=spec.name,
                line=line,
                column=missing[0],
            )
        return header

    def _rows(self, spec: CsvFile) -> Iterator[tuple[int, dict[str, str]]]:
        """(line, {column: cell}) for every data row with the header's cell count (others: see _records)."""
        header = self._headers.get(spec.collection) or self._check_header(spec)
        rows = self._lines(spec.name)
        next(rows, None)
        for line, cells in rows:
            if len(cells) == len(header):
                yield line, dict(zip(header, cells, strict=True))

    def _children(self, collection: str) -> dict[str, list[str]]:
        """parent sourcedId → child sourcedIds in file order (orgs, sessions: the JSON binding's ``children``)."""
        children: dict[str, list[str]] = {}
        for _, row in self._rows(FILES[collection]):
            parent = row.get("parentSourcedId", "").strip()
            if parent and row.get("status", "").strip() != "tobedeleted":
                children.setdefault(parent, []).append(row.get("sourcedId", "").strip())
        return children

    def _records(self, spec: CsvFile, stats: FetchStats) -> Iterator[list[Record]]:
        started = time.perf_counter()
        header = self._headers[spec.collection]
        children = self._children(spec.collection) if spec.collection in CHILD_REFS else None
        rows = self._lines(spec.name)
        try:
            yield from self._batches(spec, stats, header, children, rows)
        finally:
            rows.close()  # a consumer that stops early closes the zip member too
        stats.add(seconds=time.perf_counter() - started)
        stats.complete = True

    def _batches(
        self,
        spec: CsvFile,
        stats: FetchStats,
        header: list[str],
        children: dict[str, list[str]] | None,
        rows: Generator[tuple[int, list[str]], None, None],
    ) -> Iterator[list[Record]]:
        seen = SeenRecords()
        pending: list[Record] = []
        lines: dict[str, int] = {}
        row_rejects: list[Reject] = []
        next(rows, None)  # the header, checked on open
        for line, cells in rows:
            stats.add(records=1)
            if len(cells) != len(header):
                row_rejects.append(
                    self._row_reject(
                        spec,
                        line,
                        cells,
                        header,
                        "*",
                        "column_count",
                        str(len(cells)),
                        f"expected {len(header)} cells as in the header, got {len(cells)}",
                    )
                )
            else:
                row = dict(zip(header, cells, strict=True))
                if not row.get("sourcedId", "").strip():
                    row_rejects.append(
                        self._row_reject(
                            spec,
                            line,
                            cells,
                            header,
                            "sourcedId",
                            "required",
                            None,
                            "column 'sourcedId' is empty",
                        )
                    )
                else:
                    try:
                        record = map_row(spec.collection, row, self.default_stamp, children)
                    except RowProblem as exc:
                        row_rejects.append(
                            self._row_reject(
                                spec, line, cells, header, exc.column, exc.check, exc.value, str(exc)
                            )
                        )
                    else:
                        pending.append(record)
                        lines.setdefault(record["sourcedId"], line)
            if len(pending) + len(row_rejects) >= self.batch_size:
                yield self._batch(spec, seen, stats, pending, lines, row_rejects)
                pending, lines, row_rejects = [], {}, []
        if pending or row_rejects or stats.pages == 0:
            yield self._batch(spec, seen, stats, pending, lines, row_rejects)

    def _batch(
        self,
        spec: CsvFile,
        seen: SeenRecords,
        stats: FetchStats,
        records: list[Record],
        lines: dict[str, int],
        row_rejects: list[Reject],
    ) -> CsvBatch:
        sorted_out = seen.keep_new(records)
        stats.add(
            pages=1, duplicates_dropped=sorted_out.duplicates, conflicting_duplicates=len(sorted_out.issues)
        )
        return CsvBatch(sorted_out.fresh, sorted_out.issues, spec.name, lines, row_rejects)

    def _row_reject(
        self,
        spec: CsvFile,
        line: int,
        cells: list[str],
        header: list[str],
        column: str,
        check: str,
        value: str | None,
        problem: str,
    ) -> Reject:
        index = header.index("sourcedId") if "sourcedId" in header else -1
        sourced_id = (
            visible(cells[index].strip()) if 0 <= index < len(cells) and cells[index].strip() else None
        )
        name = resource(spec.collection).name
        who = f"{name} {sourced_id!r}" if sourced_id else f"{name} row without a sourcedId"
        raw = {"file": spec.name, "line": line, "cells": [visible(c) for c in cells]}
        return Reject(
            resource=name,
            sourced_id=sourced_id,
            field=column if column != "*" else "*",
            check=check,
            value=None if value is None else visible(value)[:200],
            message=(
                f"district {self.district_id!r}, {who}: {spec.name} line {line}"
                f"{'' if column == '*' else f', column {column!r}'}: {problem}; the row is quarantined"
            ),
            raw=raw,
        )
