"""The roster warehouse: staging → diff → one-transaction publish, with soft deletes and history.

SQLAlchemy 2 Core on Postgres (production, COPY bulk loads) or a SQLite file (the embedded default).
"""

from .columns import RESOURCE_COLUMNS, columns_for, flattener
from .core import ImportRun, Warehouse, WarehouseError
from .counts import ChangeCounts
from .engine import DEFAULT_SQLITE_PATH, ENV_DATABASE_URL
from .field_diff import FIELD_CHANGE_COLUMNS
from .lifecycle import OPEN_STATUSES
from .load import StagingError
from .schema import IMPORT_STATUSES, SCHEMA_VERSION, TABLES
from .summaries import CHANGE_SUMMARY_COLUMNS, SCHOOL_SUMMARY_COLUMNS
from .undo import ResourceUndo, UndoCheckError, UndoRefusedError, UndoResult

__all__ = [
    "CHANGE_SUMMARY_COLUMNS",
    "DEFAULT_SQLITE_PATH",
    "ENV_DATABASE_URL",
    "FIELD_CHANGE_COLUMNS",
    "IMPORT_STATUSES",
    "OPEN_STATUSES",
    "RESOURCE_COLUMNS",
    "SCHEMA_VERSION",
    "SCHOOL_SUMMARY_COLUMNS",
    "TABLES",
    "ChangeCounts",
    "ImportRun",
    "ResourceUndo",
    "StagingError",
    "UndoCheckError",
    "UndoRefusedError",
    "UndoResult",
    "Warehouse",
    "WarehouseError",
    "columns_for",
    "flattener",
]
