"""Record validation: pandera schemas per batch, before staging.

``validate_batch`` splits each page of records into valid ones (to stage) and Rejects (to quarantine);
``issue_rejects`` turns what the client reported while receiving (conflicting duplicates) into Rejects.
The referential checks run in SQL once all resources of an import are staged
(``roster_pipeline.warehouse.references``).
"""

from .received import issue_rejects
from .records import CHECKS, BatchValidation, validate_batch
from .schemas import SCHEMAS
from .warnings import STUDENT_WITHOUT_EMAIL

__all__ = [
    "CHECKS",
    "SCHEMAS",
    "STUDENT_WITHOUT_EMAIL",
    "BatchValidation",
    "issue_rejects",
    "validate_batch",
]
