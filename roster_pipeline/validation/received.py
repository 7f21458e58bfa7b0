"""Rejects for problems the client found while receiving records, before any batch check saw them.

Two different records served under one sourcedId (``RecordIssue`` with check ``conflicting_duplicate``)
are reported by the client with the batch in which the second copy arrived.  Which copy is right cannot
be told, so every copy is quarantined; the copy received first may already be staged, so the importer
stores these with ``Warehouse.reject_staged``, which withdraws it (its raw record is read back from
staging).  A quarantined record never becomes a deletion (``warehouse.diff``): its published version
stays exactly as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from roster_pipeline.oneroster.paging import RecordIssue
from roster_pipeline.records.rejects import Reject
from roster_pipeline.records.unstorable import visible

from .messages import clip, explain, record_label


def issue_rejects(district_id: str, resource_name: str, issues: Sequence[RecordIssue]) -> list[Reject]:
    """One error Reject per copy: the copy in the issue, plus the earlier copy it says to withdraw."""
    rejects: list[Reject] = []
    for issue in issues:
        sourced_id = visible(issue.sourced_id)
        value: str | None
        label = record_label(district_id, resource_name, sourced_id)
        if issue.detail is None:
            message = f"{label}: {explain(issue.check, 'sourcedId', sourced_id)}"
            value = sourced_id
        else:  # the finder explained it (e.g. a 1.2 user without a primary role): field and reason are its own
            message = f"{label}: {issue.detail}"
            value = None if issue.value is None else visible(issue.value)
        reject = Reject(
            resource=resource_name,
            sourced_id=sourced_id,
            field=issue.field,
            check=issue.check,
            value=clip(value),
            message=message,
            raw=dict(issue.record),
        )
        if issue.withdraw_earlier:  # raw is filled in from staging by reject_staged when that copy was staged
            rejects.append(replace(reject, message=f"{message} (the copy received first)", raw=None))
        rejects.append(reject)
    return rejects
