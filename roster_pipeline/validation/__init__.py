"""Record validation: pandera schemas per batch (before staging) and referential checks in SQL (after).

``validate_batch`` splits each page of records into valid ones (to stage) and Rejects (to quarantine);
``find_reference_failures`` / ``find_reference_warnings`` run once all resources of an import are staged;
``issue_rejects`` turns what the client reported while receiving (conflicting duplicates) into Rejects.
"""

from .received import issue_rejects
from .records import CHECKS, BatchValidation, validate_batch
from .references import (
    CLASS_WITHOUT_TEACHER,
    REFERENCE_CHECK,
    REFERENCES,
    find_reference_failures,
    find_reference_warnings,
)
from .schemas import SCHEMAS
from .warnings import STUDENT_WITHOUT_EMAIL

__all__ = [
    "CHECKS",
    "CLASS_WITHOUT_TEACHER",
    "REFERENCES",
    "REFERENCE_CHECK",
    "SCHEMAS",
    "STUDENT_WITHOUT_EMAIL",
    "BatchValidation",
    "find_reference_failures",
    "find_reference_warnings",
    "issue_rejects",
    "validate_batch",
]
