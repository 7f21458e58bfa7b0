"""Turn a report into a ready-to-send EmailMessage: subject, plain text + HTML, CSV attachments, headers.

Each section is written once as plain text and once as HTML, side by side, so the two parts cannot
drift apart.  The headers make sending idempotent: ``X-Roster-Idempotency-Key`` is
``<district>:<import_id>:<kind>`` and the ``Message-ID`` is derived from it, so a retried send of the
same email is recognisably the same message (mail providers de-duplicate on Message-ID).
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from collections.abc import Iterable, Sequence
from email import policy
from email.message import EmailMessage
from email.utils import formatdate

from roster_pipeline.notify import markup as m
from roster_pipeline.notify.attachments import (
    DEFAULT_MAX_ROWS,
    CsvAttachment,
    field_changes_csv,
    rejected_rows_csv,
)
from roster_pipeline.notify.content import (
    CheckYourDataReport,
    DerivedTableWarning,
    EmailKind,
    ImportResultsReport,
    ResourceThresholdRow,
    TopError,
)
from roster_pipeline.notify.scrub import assert_no_secrets

SUBJECT_PREFIX = "[roster_pipeline]"
# Parts are encoded under BUILD_POLICY: 7-bit safe (quoted-printable/base64), lines of at most 78, so
# old relays without 8BITMIME pass them untouched.  The finished message then carries EMAIL_POLICY,
# which only changes how headers are folded: the stdlib folds a header mixing ASCII and encoded words
# after the space, so "Schools — import" arrived as "Schools  — import"; headers stay on one line up to
# RFC 5322's 998 characters instead.
BUILD_POLICY = policy.SMTP.clone(cte_type="7bit")
EMAIL_POLICY = policy.SMTP.clone(max_line_length=998)
IDEMPOTENCY_HEADER = "X-Roster-Idempotency-Key"
KIND_HEADER = "X-Roster-Kind"
DISTRICT_HEADER = "X-Roster-District"
IMPORT_HEADER = "X-Roster-Import-Id"


def idempotency_key(district_id: str, import_id: int | str, kind: EmailKind) -> str:
    """``<district>:<import_id>:<kind>``: one email of each kind per import, ever."""
    return f"{district_id}:{import_id}:{kind}"


def _domain(sender: str) -> str:
    domain = sender.rpartition("@")[2].strip(" >")
    return domain if re.fullmatch(r"[A-Za-z0-9.-]+", domain or "") else "roster-pipeline.invalid"


def message_id_for(key: str, sender: str) -> str:
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<roster-pipeline.{digest}@{_domain(sender)}>"


def _envelope(
    kind: EmailKind, district_id: str, import_id: int, subject: str, recipients: Sequence[str], sender: str
) -> EmailMessage:
    recipients = [r.strip() for r in recipients if r and r.strip()]
    if not recipients:
        raise ValueError(f"district {district_id!r} has no admin_emails: nobody to send the {kind} email to")
    message = EmailMessage(policy=BUILD_POLICY)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = m.one_line(subject)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    key = idempotency_key(district_id, import_id, kind)
    message["Message-ID"] = message_id_for(key, sender)
    message[IDEMPOTENCY_HEADER] = key
    message[KIND_HEADER] = kind
    message[DISTRICT_HEADER] = district_id
    message[IMPORT_HEADER] = str(import_id)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies back to us
    return message


def _finish(
    message: EmailMessage,
    text: str,
    html: str,
    attachments: Iterable[CsvAttachment],
    secret_env_names: Iterable[str],
) -> EmailMessage:
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    for attachment in attachments:
        message.add_attachment(
            attachment.data,
            maintype="text",
            subtype="csv",
            filename=attachment.filename,
            params={"charset": "utf-8"},
        )
    message.policy = EMAIL_POLICY  # headers only: the parts are already encoded (see BUILD_POLICY)
    assert_no_secrets(message, secret_env_names)
    return message


def _overview(rows: list[tuple[str, str]], run_url: str | None) -> tuple[str, m.Raw]:
    text_rows = list(rows) + ([("Dagster run", run_url)] if run_url else [])
    width = max(len(k) for k, _ in text_rows)
    text = "\n".join(f"{k.ljust(width)}  {m.one_line(v)}" for k, v in text_rows)
    html_rows: list[tuple[str, str | m.Raw]] = list(rows)
    if run_url:
        html_rows.append(("Dagster run", m.link(run_url, run_url)))
    return text, m.definition_table(html_rows)


def _errors_table(errors: Sequence[TopError]) -> tuple[list[str], list[list[m.Cell | str]]]:
    headers = ["Resource", "Check", "Field", "Rows", "Example"]
    rows: list[list[m.Cell | str]] = [
        [e.resource, e.check, e.field, m.Cell(m.fmt_int(e.count), numeric=True), e.example] for e in errors
    ]
    return headers, rows


# ---------------------------------------------------------------- Check Your Data


def _threshold_cell(row: ResourceThresholdRow, measure: str) -> m.Cell:
    count = getattr(row, measure)
    share = getattr(row, f"{measure}_pct")
    limit = getattr(row, f"max_{measure}_pct")
    return m.Cell(
        f"{m.fmt_int(count)} ({m.fmt_pct(share)})",
        note=m.fmt_limit(limit),
        numeric=True,
        bad=measure in row.exceeded,
    )


def _attachment_note(attachment: CsvAttachment, noun: str) -> str:
    if attachment.rows_total == 0:
        return f"{attachment.filename}: no {noun}."
    if attachment.truncated:
        return (
            f"{attachment.filename}: the first {attachment.rows_written:,} of {attachment.rows_total:,} {noun} "
            "(the email would be too large for all of them; the full list is in the warehouse)."
        )
    return f"{attachment.filename}: all {attachment.rows_total:,} {noun}."


def _rejected_note(attachment: CsvAttachment, errors: int, warnings: int) -> str:
    """What rejected_rows.csv holds: errors (kept out of the snapshot) and warnings (kept in it)."""
    if not warnings:
        return _attachment_note(attachment, "rejected rows")
    what = (
        f"{errors:,} rejected row(s) (severity 'error': kept out of the snapshot) and {warnings:,} warning(s) "
        "(severity 'warning': kept in the held snapshot)"
    )
    if attachment.truncated:
        return (
            f"{attachment.filename}: the first {attachment.rows_written:,} of {what} (the email would be too "
            "large for all of them; the full list is in the warehouse)."
        )
    return f"{attachment.filename}: {what}."


def check_your_data_subject(report: CheckYourDataReport) -> str:
    if report.failure is not None:
        return f"{SUBJECT_PREFIX} Check Your Data: {m.one_line(report.district_name)} — sync failed, district paused"
    return (
        f"{SUBJECT_PREFIX} Check Your Data: {m.one_line(report.district_name)} — "
        f"import {report.import_id} paused"
    )


def _failure_intro(report: CheckYourDataReport) -> str:
    assert report.failure is not None
    which = f" (import {report.import_id})" if report.import_id else ""
    return (
        f"The sync of {report.district_name} ({report.district_id}){which} failed during "
        f"{report.failure.step}. Nothing was published: the published roster has not changed. The district "
        "is paused: its scheduled imports are skipped until an administrator reprocesses or resumes it."
    )


def _changes_by_resource(
    headers: list[str], rows: list[list[m.Cell | str]], explain: str
) -> tuple[list[str], list[m.Raw]]:
    """The "Changes by resource" section both emails share: (plain-text lines, HTML parts)."""
    text = [
        "Changes by resource (% of published rows; rejected: % of fetched rows)",
        "----------------------------------------------------------------------",
        m.text_table(headers, rows),
        textwrap.fill(explain, 100),
        "",
    ]
    html = [
        m.h2("Changes by resource"),
        m.p(explain, style=f"margin:4px 0;{m.MUTED}"),
        m.table(headers, rows),
    ]
    return text, html


def render_check_your_data(
    report: CheckYourDataReport,
    recipients: Sequence[str],
    sender: str,
    *,
    secret_env_names: Iterable[str] = (),
    max_attachment_rows: int = DEFAULT_MAX_ROWS,
) -> EmailMessage:
    """The Check Your Data email for a paused import, with rejected_rows.csv and field_changes.csv.

    Raises ValueError without recipients and SecretInMessageError if a named secret appears anywhere.
    """
    subject = check_your_data_subject(report)
    message = _envelope("check_your_data", report.district_id, report.import_id, subject, recipients, sender)
    errors_total = report.rejected_total if report.rejected_total is not None else len(report.rejected_rows)
    warnings_listed = max(report.warnings_count, len(report.warning_rows)) if report.warning_rows else 0
    rejected = rejected_rows_csv(
        report.district_id,
        [*report.rejected_rows, *report.warning_rows],
        errors_total + warnings_listed,
        max_attachment_rows,
    )
    changes = field_changes_csv(report.field_changes, report.field_changes_total, max_attachment_rows)

    text: list[str] = []
    html: list[m.Raw] = []

    title = f"Check Your Data: {report.district_name}"
    failure = report.failure
    intro = (
        _failure_intro(report)
        if failure is not None
        else (
            f"Import {report.import_id} of {report.district_name} ({report.district_id}) was paused before "
            f"publishing: {len(report.failed_checks)} blocking check(s) failed. Nothing from this import has "
            "reached the roster your systems read; the new snapshot is held until an administrator reviews it."
        )
    )
    text += [m.one_line(title), "=" * len(m.one_line(title)), "", intro, ""]
    html += [m.Raw(f'<h1 style="font-size:20px;margin:0 0 8px 0">{m.esc(title)}</h1>'), m.p(intro)]

    overview_text, overview_html = _overview(
        [
            ("District", f"{report.district_name} ({report.district_id})"),
            ("Import", str(report.import_id)),
            ("School year", str(report.school_year or "—")),
            ("Sync mode", report.sync_mode),
            ("Started", m.fmt_time(report.started_at, report.timezone)),
        ],
        report.run_url,
    )
    text += [overview_text, ""]
    html.append(overview_html)

    if failure is not None:
        causes = [line.strip().removeprefix("then: ") for line in failure.cause.splitlines() if line.strip()]
        causes = causes or ["no cause recorded"]
        text += [
            "What failed",
            "-----------",
            f"- Step: {m.one_line(failure.step)}",
            *(f"- {'Cause' if i == 0 else 'Then'}: {m.one_line(line)}" for i, line in enumerate(causes)),
            "",
        ]
        html.append(m.h2("What failed"))
        html.append(
            m.bullets(
                [
                    m.Raw(f"{m.strong('Step').html}: {m.esc(failure.step)}"),
                    *(
                        m.Raw(f"{m.strong('Cause' if i == 0 else 'Then').html}: {m.esc(line)}")
                        for i, line in enumerate(causes)
                    ),
                ]
            )
        )
    else:
        text += ["Why it was paused", "-----------------"]
        text += [f"- {m.one_line(c.name)}: {m.one_line(c.reason)}" for c in report.failed_checks] or [
            "- (no details)"
        ]
        text.append("")
        html.append(m.h2("Why it was paused"))
        html.append(
            m.bullets([m.Raw(f"{m.strong(c.name).html}: {m.esc(c.reason)}") for c in report.failed_checks])
        )

    if report.resources:
        headers = [
            "Resource",
            "Published before",
            "Fetched",
            "Added",
            "Updated",
            "Deleted",
            "Rejected",
            "Status",
        ]
        rows: list[list[m.Cell | str]] = [
            [
                r.resource,
                m.Cell(m.fmt_int(r.published_before), numeric=True),
                m.Cell(m.fmt_int(r.fetched), numeric=True),
                _threshold_cell(r, "added"),
                _threshold_cell(r, "updated"),
                _threshold_cell(r, "deleted"),
                _threshold_cell(r, "rejected"),
                m.Cell(r.status, bad=r.status == "EXCEEDED"),
            ]
            for r in report.resources
        ]
        section_text, section_html = _changes_by_resource(
            headers,
            rows,
            "Added, updated and deleted are a share of the rows published before this import; rejected is "
            "a share of the rows fetched. Cells over their limit are highlighted.",
        )
        text += section_text
        html += section_html

    if report.schools:
        headers = ["School", "Resource", "Before", "After", "Drop", "Drop %", "Limit"]
        rows = [
            [
                f"{s.school_name} ({s.school_id})",
                s.resource,
                m.Cell(m.fmt_int(s.before), numeric=True),
                m.Cell(m.fmt_int(s.after), numeric=True),
                m.Cell(m.fmt_int(s.drop), numeric=True, bad=True),
                m.Cell(m.fmt_pct(s.drop_pct), numeric=True, bad=True),
                m.Cell(f"{s.threshold_pct:g}%", numeric=True),
            ]
            for s in report.schools
        ]
        text += [
            "Schools over their threshold",
            "----------------------------",
            m.text_table(headers, rows),
            "",
        ]
        html += [m.h2("Schools over their threshold"), m.table(headers, rows)]

    if report.top_errors:
        headers, rows = _errors_table(report.top_errors)
        text += ["Top errors", "----------", m.text_table(headers, rows), ""]
        html += [m.h2("Top errors"), m.table(headers, rows)]
    if report.warnings_count:
        listed = report.warning_rows or any(r.severity == "warning" for r in report.rejected_rows)
        where = (
            "They are listed in rejected_rows.csv with severity 'warning'."
            if listed
            else "They are not listed in the attachments."
        )
        note = (
            f"{report.warnings_count:,} warning(s) were also reported. A warning does not reject its record: "
            f"it is part of the held snapshot and goes live only if the snapshot is approved. {where}"
        )
        text += [note, ""]
        html.append(m.p(note))

    first = "Fix or check the cause above" if failure is not None else "Review the attachments"
    text += [
        "What to do next",
        "---------------",
        (
            f"{first}, then choose one of these actions (in the Dagster UI: Jobs → the job → "
            "Launchpad, paste the config, fill in your name, Launch Run; or on the command line):"
        ),
        "",
    ]
    html += [
        m.h2("What to do next"),
        m.p(
            f"{first}, then choose one of these actions. In the Dagster UI open ",
            m.strong("Jobs"),
            ", pick the job, open the ",
            m.strong("Launchpad"),
            ", paste the config, fill in your name and press ",
            m.strong("Launch Run"),
            ". Or use the command line.",
        ),
    ]
    for action in report.actions:
        label = action.action.capitalize()
        text += [
            f"* {label}: {action.what_it_does}",
            f"  Dagster UI: job {action.job_name}, config:",
            *("    " + line for line in action.launchpad_config.rstrip().splitlines()),
            f"  Command line: {action.cli_command}",
            "",
        ]
        html += [
            m.p(m.strong(label), ": ", action.what_it_does, style="margin:12px 0 4px 0"),
            m.p("Dagster UI: job ", m.code(action.job_name), ", config:", style="margin:2px 0"),
            m.pre(action.launchpad_config.rstrip()),
            m.p("Command line: ", m.code(action.cli_command), style="margin:2px 0 8px 0"),
        ]

    notes = [
        _rejected_note(rejected, errors_total, warnings_listed),
        _attachment_note(changes, "field changes"),
    ]
    text += ["Attachments", "-----------", *(f"- {n}" for n in notes), ""]
    html += [m.h2("Attachments"), m.bullets(notes)]

    footer = (
        f"Sent by roster_pipeline for district {report.district_id}, import {report.import_id}. "
        "You receive this because you are listed as an administrator of this district."
    )
    text.append(footer)
    html.append(m.p(footer, style=f"margin:24px 0 0 0;{m.MUTED}"))

    # Both files are always attached (header-only when empty), so admins and scripts find the same shape.
    return _finish(
        message, "\n".join(text) + "\n", m.document(subject, html), [rejected, changes], secret_env_names
    )


# ---------------------------------------------------------------- Import Results


def import_results_subject(report: ImportResultsReport) -> str:
    return (
        f"{SUBJECT_PREFIX} Import Results: {m.one_line(report.district_name)} — "
        f"import {report.import_id} published"
    )


def _count_cell(count: int, share: float | None) -> m.Cell:
    return m.Cell(f"{m.fmt_int(count)} ({m.fmt_pct(share)})", numeric=True)


def _derived_warnings(warnings: Sequence[DerivedTableWarning]) -> tuple[list[str], list[m.Raw]]:
    """The derived tables' findings (published anyway): count and the first few sourcedIds of each."""
    if not warnings:
        return [], []
    total = sum(w.count for w in warnings)
    intro = (
        f"{total:,} warning(s) from the derived tables, rebuilt from the published data (published anyway; "
        "each table lists every row concerned):"
    )
    headers = ["Table", "Warning", "Count", "First sourcedIds"]
    rows: list[list[m.Cell | str]] = [
        [w.table, w.finding, m.Cell(m.fmt_int(w.count), numeric=True), ", ".join(w.first_ids)]
        for w in warnings
    ]
    return (
        ["Derived tables", "--------------", intro, m.text_table(headers, rows), ""],
        [m.h2("Derived tables"), m.p(intro), m.table(headers, rows)],
    )


def render_import_results(
    report: ImportResultsReport,
    recipients: Sequence[str],
    sender: str,
    *,
    secret_env_names: Iterable[str] = (),
) -> EmailMessage:
    """The Import Results email of a published import (no attachments)."""
    subject = import_results_subject(report)
    message = _envelope("import_results", report.district_id, report.import_id, subject, recipients, sender)
    text: list[str] = []
    html: list[m.Raw] = []

    title = f"Import Results: {report.district_name}"
    intro = f"Import {report.import_id} of {report.district_name} ({report.district_id}) was published."
    text += [m.one_line(title), "=" * len(m.one_line(title)), "", intro]
    html += [m.Raw(f'<h1 style="font-size:20px;margin:0 0 8px 0">{m.esc(title)}</h1>'), m.p(intro)]
    if report.approval is not None:
        when = m.fmt_time(report.approval.approved_at, report.timezone) if report.approval.approved_at else ""
        override = (
            f"The import thresholds were overridden for this import: {report.approval.reviewer} approved "
            f"the held snapshot{' on ' + when if when else ''}"
            f"{' (note: ' + report.approval.note + ')' if report.approval.note else ''}."
        )
        text.append(m.one_line(override))
        html.append(m.p(m.strong("Thresholds overridden. "), override))
    text.append("")

    overview_text, overview_html = _overview(
        [
            ("District", f"{report.district_name} ({report.district_id})"),
            ("Import", str(report.import_id)),
            ("School year", str(report.school_year or "—")),
            ("Sync mode", report.sync_mode),
            ("Started", m.fmt_time(report.started_at, report.timezone)),
            ("Duration", m.fmt_duration(report.duration)),
            ("Thresholds", f"overridden by {report.approval.reviewer}" if report.approval else "passed"),
        ],
        report.run_url,
    )
    text += [overview_text, ""]
    html.append(overview_html)

    if report.resources:
        headers = [
            "Resource",
            "Published before",
            "Fetched",
            "Added",
            "Updated",
            "Unchanged",
            "Marked tobedeleted",
            "Withheld",
            "Duplicates",
            "Rejected",
            "Deleted",
        ]
        rows: list[list[m.Cell | str]] = [
            [
                r.resource,
                m.Cell(m.fmt_int(r.published_before), numeric=True),
                m.Cell(m.fmt_int(r.fetched), numeric=True),
                _count_cell(r.added, r.added_pct),
                _count_cell(r.updated, r.updated_pct),
                _count_cell(r.unchanged, r.unchanged_pct),
                m.Cell(m.fmt_int(r.tobedeleted), numeric=True),
                m.Cell(m.fmt_int(r.withheld), numeric=True),
                m.Cell(m.fmt_int(r.duplicates), numeric=True),
                _count_cell(r.rejected, r.rejected_pct),
                _count_cell(r.deleted, r.deleted_pct),
            ]
            for r in report.resources
        ]
        explain = (
            "Fetched = added + updated + unchanged + marked tobedeleted + withheld + duplicates + rejected. "
            "Marked tobedeleted: records the SIS sent as tobedeleted (stored as deleted); withheld: deletions "
            "held back during the rollover window; duplicates: repeated copies of a record in the same pull. "
            "Deleted: published rows this import deleted (those marked tobedeleted, and in a full import "
            "those no longer in the SIS). Percentages are of the rows published before this import "
            "(rejected: of the rows fetched), the figures the import's checks used."
        )
        section_text, section_html = _changes_by_resource(headers, rows, explain)
        text += section_text
        html += section_html

    none = "No record warnings." if report.derived_warnings else "No warnings."
    warn = f"{report.warnings_count:,} warning(s)" if report.warnings_count else none
    text += ["Warnings", "--------", warn]
    html += [m.h2("Warnings"), m.p(warn)]
    if report.top_warnings:
        headers, rows = _errors_table(report.top_warnings)
        text.append(m.text_table(headers, rows))
        html.append(m.table(headers, rows))
    text.append("")
    derived_text, derived_html = _derived_warnings(report.derived_warnings)
    text += derived_text
    html += derived_html

    footer = f"Sent by roster_pipeline for district {report.district_id}, import {report.import_id}."
    text.append(footer)
    html.append(m.p(footer, style=f"margin:24px 0 0 0;{m.MUTED}"))
    return _finish(message, "\n".join(text) + "\n", m.document(subject, html), [], secret_env_names)


__all__ = [
    "DISTRICT_HEADER",
    "EMAIL_POLICY",
    "IDEMPOTENCY_HEADER",
    "IMPORT_HEADER",
    "KIND_HEADER",
    "check_your_data_subject",
    "idempotency_key",
    "import_results_subject",
    "message_id_for",
    "render_check_your_data",
    "render_import_results",
]
