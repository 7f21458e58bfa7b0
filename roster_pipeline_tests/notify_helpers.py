"""Sample reports and email parsing for the notification tests (shared by the render, send and threshold modules)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pandas as pd

from roster_pipeline.notify import (
    CheckYourDataReport,
    FailedCheck,
    ImportResultsReport,
    ResourceCountsRow,
    ResourceThresholdRow,
    SchoolThresholdRow,
    TopError,
)
from roster_pipeline.records.rejects import Reject

SENDER = "roster-pipeline@district.example.org"
ADMINS = ["it-admin@springfield.k12.example", "registrar@springfield.k12.example"]
STARTED = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def sample_rejects(n: int = 3) -> list[Reject]:
    base = [
        Reject(
            "users", "u-1", "email", "email_format", "not-an-email", "users u-1: email is not a valid address"
        ),
        Reject(
            "enrollments",
            "e-9",
            "class.sourcedId",
            "reference",
            "c-404",
            "enrollments e-9: class c-404 does not exist",
        ),
        Reject("users", "u-2", "givenName", "required", None, "users u-2: givenName is missing", "warning"),
    ]
    extra = [
        Reject("users", f"u-x{i}", "email", "email_format", f"bad{i}", f"users u-x{i}: bad email")
        for i in range(max(0, n - len(base)))
    ]
    return (base + extra)[:n]


def sample_changes() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "resource": "users",
                "sourced_id": "u-7",
                "change": "updated",
                "field": "familyName",
                "old_value": "Smith",
                "new_value": "Smith-Jones",
            },
            {
                "resource": "users",
                "sourced_id": "u-8",
                "change": "updated",
                "field": "givenName",
                "old_value": "Jose",
                "new_value": "José",
            },
            {
                "resource": "enrollments",
                "sourced_id": "e-1",
                "change": "deleted",
                "field": "*",
                "old_value": None,
                "new_value": None,
            },
        ]
    )


def check_your_data_report(**overrides: object) -> CheckYourDataReport:
    fields: dict[str, object] = {
        "district_id": "springfield",
        "district_name": "Springfield Public Schools",
        "import_id": 42,
        "run_id": "0f6c-run",
        "school_year": "2027",
        "sync_mode": "full",
        "started_at": STARTED,
        "failed_checks": [
            FailedCheck("enrollments_thresholds", "62% of enrollments would be deleted (limit 10%)")
        ],
        "resources": [
            ResourceThresholdRow(
                "users", 1000, 1002, 4, 10, 2, 3, max_updated_pct=75, max_deleted_pct=10, max_rejected_pct=1
            ),
            ResourceThresholdRow(
                "enrollments",
                5000,
                1900,
                0,
                0,
                3100,
                1,
                max_updated_pct=75,
                max_deleted_pct=10,
                max_rejected_pct=1,
                status="EXCEEDED",
                exceeded=("deleted",),
            ),
        ],
        "schools": [SchoolThresholdRow("Lincoln Elementary", "sch-3", "enrollments", 800, 40, 20.0)],
        "warnings_count": 1,
        "rejected_rows": sample_rejects(),
        "field_changes": sample_changes(),
        "timezone": "America/Chicago",
    }
    fields.update(overrides)
    return CheckYourDataReport(**fields)  # type: ignore[arg-type]


def import_results_report(**overrides: object) -> ImportResultsReport:
    fields: dict[str, object] = {
        "district_id": "springfield",
        "district_name": "Springfield Public Schools",
        "import_id": 43,
        "run_id": "77aa-run",
        "school_year": "2027",
        "sync_mode": "delta",
        "started_at": STARTED,
        "duration": timedelta(minutes=4, seconds=12),
        "resources": [
            ResourceCountsRow("users", 1000, 120, 20, 100, 5, 875, 0),
            ResourceCountsRow("enrollments", 5000, 300, 50, 0, 250, 4700, 2),
        ],
        "warnings_count": 7,
        "top_warnings": [
            TopError("classes", "class_without_teacher", "*", 7, "classes c-1 has no teacher", "warning")
        ],
        "timezone": "America/Chicago",
    }
    fields.update(overrides)
    return ImportResultsReport(**fields)  # type: ignore[arg-type]


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def csv_attachment(message: EmailMessage, filename: str) -> list[dict[str, str]]:
    found = [p for p in message.iter_attachments() if p.get_filename() == filename]
    assert len(found) == 1, f"{filename} not attached"
    part = found[0]
    assert part.get_content_type() == "text/csv"
    assert part.get_content_charset() == "utf-8"
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return list(csv.DictReader(io.StringIO(payload.decode("utf-8-sig"))))


def reparse(message: EmailMessage) -> EmailMessage:
    """What a receiving client sees: the message serialized as smtplib does and parsed back."""
    parsed = BytesParser(policy=policy.default).parsebytes(message.as_bytes())
    assert isinstance(parsed, EmailMessage)
    return parsed
