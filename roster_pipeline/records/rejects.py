"""What a check says about one record: the unit of the quarantine (rejects) table and of reports.

Validation produces these, the warehouse stores them, the Dagster checks count them and the emails list
them.  ``severity`` "error" means the record is quarantined (never staged, never published);
"warning" means it is published but reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Reject:
    """One failed check of one record (a record failing three checks gives three Rejects)."""

    resource: str  # snake_case resource name ("enrollments")
    sourced_id: str | None  # None when the record has no usable sourcedId
    field: str  # OneRoster field name as served ("class.sourcedId", "email", "beginDate"); "*" for the row
    check: (
        str  # short stable name of the check ("required", "enum", "date_format", "unique", "reference" ...)
    )
    value: str | None  # the offending value, as text, truncated to 200 chars; never a secret
    message: str  # human sentence naming the district, resource and field
    severity: Severity = "error"
    raw: dict[str, Any] | None = None  # the whole record as served, kept for review (errors only)
