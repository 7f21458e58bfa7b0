"""The Warehouse facade: the one object the rest of the product holds to import, publish and report.

Three layers, each a module of its own: ``lifecycle.py`` (an import opened, loaded into staging, held,
failed or discarded), ``publishing.py`` (classification, quarantine, the one-transaction publish, undo
and purges) and ``reporting.py`` (summaries, the field diff, rejects).  Every method opens its own short
transaction, so one ``Warehouse`` can be shared by Dagster steps running in separate processes against
the same database.
"""

from __future__ import annotations

from .errors import WarehouseError
from .lifecycle import ImportRun
from .reporting import ImportReports

__all__ = ["ImportRun", "Warehouse", "WarehouseError"]


class Warehouse(ImportReports):
    """The roster warehouse. ``url=None``: ``ROSTER_DATABASE_URL``, else the embedded SQLite file."""
