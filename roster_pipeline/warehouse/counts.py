"""ChangeCounts: what an import does (or would do) to one resource's published rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ChangeCounts:
    """Counts for one resource of one import.

    Over the import's distinct staged records: ``added + updated + unchanged + tobedeleted`` equals
    ``fetched - duplicates - quarantined`` (``fetched`` counts identical repeats the client dropped too,
    see ``Warehouse.record_fetch_stats``; they are ``duplicates``), where ``quarantined`` are staged rows withdrawn again by the
    quarantine (``reject_staged``: a record that failed a check after staging is never published).  ``added`` includes ``readded`` (records that come back after having been
    soft-deleted).  ``deleted`` is what gets soft-deleted: alive rows that arrived ``tobedeleted`` plus,
    in a full import only, alive rows that vanished from the pull.  ``new_tobedeleted`` (part of
    ``tobedeleted``) are records first seen as ``tobedeleted``: they are inserted soft-deleted, so the
    warehouse keeps everything the SIS sent.  An ``additions_only`` import (rollover window) deletes
    nothing: its ``tobedeleted`` records of alive rows are ``withheld`` (withdrawn from staging, like the
    quarantine) and it infers no vanished rows, so ``deleted`` is 0.
    """

    fetched: int = 0
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    tobedeleted: int = 0
    duplicates: int = 0
    readded: int = 0
    new_tobedeleted: int = 0  # arrived tobedeleted, never published: stored already soft-deleted
    quarantined: int = 0  # staged rows removed from staging by the quarantine (part of fetched)
    withheld: int = 0  # deletions an additions_only import held back (rollover window; part of fetched)

    @property
    def changed(self) -> int:
        return self.added + self.updated + self.deleted

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
