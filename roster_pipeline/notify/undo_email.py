"""The "Import Undone" email: an Import Results-style message after an admin undid a published import.

Built from the figures the undo recorded (``import_undo_counts``), the same ones the CLI printed and the
audit row summarises, with the layout helpers of ``render`` (same headers, idempotency key, secret scrub).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage

from roster_pipeline.notify import markup as m
from roster_pipeline.notify.content import EmailKind
from roster_pipeline.notify.render import SUBJECT_PREFIX, _envelope, _finish, _overview

KIND: EmailKind = "import_undone"


@dataclass(frozen=True)
class UndoCountsRow:
    """One resource: its current view before and after the undo, and the rows the undo changed."""

    resource: str
    published_before: int
    published_after: int
    restored: int
    removed: int
    unarchived: int = 0


@dataclass
class ImportUndoneReport:
    district_id: str
    district_name: str
    import_id: int
    school_year: int | None  # the undone import's
    current_school_year: int | None  # the district's after the undo (None: nothing published any more)
    undone_by: str
    undone_at: datetime | None
    note: str | None
    forced: bool  # the undo's checks failed and the reviewer overrode them
    paused: bool  # the district is paused after the undo
    resources: list[UndoCountsRow] = field(default_factory=list)
    timezone: str = "UTC"


def import_undone_subject(report: ImportUndoneReport) -> str:
    return f"{SUBJECT_PREFIX} Import Undone: {m.one_line(report.district_name)} — import {report.import_id} undone"


def render_import_undone(
    report: ImportUndoneReport,
    recipients: Sequence[str],
    sender: str,
    *,
    secret_env_names: Iterable[str] = (),
) -> EmailMessage:
    """The Import Undone email (no attachments). Raises ValueError without recipients."""
    subject = import_undone_subject(report)
    message = _envelope(KIND, report.district_id, report.import_id, subject, recipients, sender)
    text: list[str] = []
    html: list[m.Raw] = []

    title = f"Import Undone: {report.district_name}"
    when = m.fmt_time(report.undone_at, report.timezone)
    back_to = (
        "the state before that import"
        if report.current_school_year is not None
        else "nothing: that import was the district's first, so no roster is published any more"
    )
    intro = (
        f"Import {report.import_id} of {report.district_name} ({report.district_id}) was undone by "
        f"{report.undone_by} on {when}. The published roster is back to {back_to}."
    )
    text += [m.one_line(title), "=" * len(m.one_line(title)), "", m.one_line(intro)]
    html += [m.Raw(f'<h1 style="font-size:20px;margin:0 0 8px 0">{m.esc(title)}</h1>'), m.p(intro)]
    if report.forced:
        forced = (
            f"The undo tripped the district's import thresholds and {report.undone_by} overrode them "
            "(recorded in the review audit)."
        )
        text.append(m.one_line(forced))
        html.append(m.p(m.strong("Thresholds overridden. "), forced))
    if report.paused:
        next_step = (
            "Scheduled imports are paused: the SIS may still serve what the undone import brought in. "
            f"Once it is fixed, run `roster-pipeline review {report.district_id} reprocess` (or the "
            "review_reprocess job) to fetch again, or `reject` to resume as is."
        )
    else:
        next_step = (
            "Scheduled imports go on: the next sync fetches from the SIS again and brings back whatever "
            "it still serves."
        )
    text += [m.one_line(next_step), ""]
    html.append(m.p(next_step))

    overview_text, overview_html = _overview(
        [
            ("District", f"{report.district_name} ({report.district_id})"),
            ("Undone import", str(report.import_id)),
            ("Its school year", str(report.school_year or "—")),
            ("Current school year", str(report.current_school_year or "— (nothing published)")),
            ("Undone by", report.undone_by),
            ("Undone at", when),
            ("Note", report.note or "—"),
            ("Thresholds", f"overridden by {report.undone_by}" if report.forced else "passed"),
        ],
        None,
    )
    text += [overview_text, ""]
    html.append(overview_html)

    if report.resources:
        headers = ["Resource", "Published before", "Restored", "Removed", "Un-archived", "Published after"]
        rows: list[list[m.Cell | str]] = [
            [
                r.resource,
                m.Cell(m.fmt_int(r.published_before), numeric=True),
                m.Cell(m.fmt_int(r.restored), numeric=True),
                m.Cell(m.fmt_int(r.removed), numeric=True),
                m.Cell(m.fmt_int(r.unarchived), numeric=True),
                m.Cell(m.fmt_int(r.published_after), numeric=True),
            ]
            for r in report.resources
        ]
        explain = (
            "Restored: records given back the version they had before the import (updated, deleted or "
            "re-added by it). Removed: records the import had added. Published before / after: current "
            "records of the resource."
        )
        text += [
            "Changes by resource",
            "-------------------",
            m.text_table(headers, rows),
            m.one_line(explain),
            "",
        ]
        html += [
            m.h2("Changes by resource"),
            m.table(headers, rows),
            m.p(explain, style=f"margin:4px 0;{m.MUTED}"),
        ]

    footer = (
        f"Sent by roster_pipeline for district {report.district_id}, import {report.import_id}. "
        "You receive this because you are listed as an administrator of this district."
    )
    text.append(footer)
    html.append(m.p(footer, style=f"margin:24px 0 0 0;{m.MUTED}"))
    return _finish(message, "\n".join(text) + "\n", m.document(subject, html), [], secret_env_names)
