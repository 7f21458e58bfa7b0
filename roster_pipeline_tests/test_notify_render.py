"""The two emails as rendered: headers, both parts, CSV attachments, escaping, caps and the secret scrubber."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from roster_pipeline.notify import (
    Approval,
    FailedCheck,
    SchoolThresholdRow,
    SecretInMessageError,
    TopError,
    find_secret_leaks,
    render_check_your_data,
    render_import_results,
    secret_env_names_for,
)
from roster_pipeline.notify.attachments import FIELD_CHANGE_COLUMNS, REJECT_COLUMNS
from roster_pipeline.records.rejects import Reject
from roster_pipeline.registry.districts import District

from .notify_helpers import (
    ADMINS,
    SENDER,
    check_your_data_report,
    csv_attachment,
    import_results_report,
    parts,
    reparse,
    sample_changes,
    sample_rejects,
)


def test_check_your_data_headers_parts_and_attachments() -> None:
    message = reparse(render_check_your_data(check_your_data_report(), ADMINS, SENDER))

    assert (
        message["Subject"]
        == "[roster_pipeline] Check Your Data: Springfield Public Schools — import 42 paused"
    )
    assert [a.addr_spec for a in message["To"].addresses] == ADMINS
    assert message["From"] == SENDER
    assert message["X-Roster-Idempotency-Key"] == "springfield:42:check_your_data"
    assert message["Message-ID"].startswith("<roster-pipeline.") and message["Message-ID"].endswith(
        "@district.example.org>"
    )
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/mixed"

    text, html = parts(message)
    for body in (text, html):
        assert "enrollments_thresholds" in body
        assert "62% of enrollments would be deleted (limit 10%)" in body
        assert "3,100 (62%)" in body and "limit 10%" in body  # the tripped cell, with its threshold
        assert "Lincoln Elementary" in body and "sch-3" in body  # the school that tripped
        assert "class c-404 does not exist" in body  # a top error
        for action in ("approve", "reject", "reprocess"):
            assert f"review_{action}" in body
            assert f"roster-pipeline review springfield {action}" in body
        assert "http://localhost:3000/runs/0f6c-run" in body
        assert "2026-11-25 02:00 CST" in body  # the district's own timezone
        assert "rejected_rows.csv" in body and "field_changes.csv" in body
    assert "<script" not in html.lower() and "<link" not in html.lower() and "<img" not in html.lower()
    assert 'style="' in html and "<table" in html

    rejected = csv_attachment(message, "rejected_rows.csv")
    assert list(rejected[0]) == list(REJECT_COLUMNS)
    assert [(r["resource"], r["sourced_id"], r["check"], r["severity"]) for r in rejected] == [
        ("users", "u-1", "email_format", "error"),
        ("enrollments", "e-9", "reference", "error"),
        ("users", "u-2", "required", "warning"),
    ]
    assert {r["district_id"] for r in rejected} == {"springfield"}
    assert rejected[2]["value"] == ""

    changes = csv_attachment(message, "field_changes.csv")
    assert list(changes[0]) == list(FIELD_CHANGE_COLUMNS)
    assert changes[1] == {
        "resource": "users",
        "sourced_id": "u-8",
        "change": "updated",
        "field": "givenName",
        "old_value": "Jose",
        "new_value": "José",
    }
    assert changes[2]["change"] == "deleted" and changes[2]["old_value"] == ""


def test_field_changes_accept_a_list_of_dicts() -> None:
    rows = sample_changes().to_dict("records")
    message = render_check_your_data(check_your_data_report(field_changes=rows), ADMINS, SENDER)
    assert [r["sourced_id"] for r in csv_attachment(message, "field_changes.csv")] == ["u-7", "u-8", "e-1"]


def test_empty_attachments_still_have_their_header_row() -> None:
    message = render_check_your_data(
        check_your_data_report(rejected_rows=[], field_changes=None), ADMINS, SENDER
    )
    assert csv_attachment(message, "rejected_rows.csv") == []
    assert csv_attachment(message, "field_changes.csv") == []
    text, _ = parts(message)
    assert "rejected_rows.csv: no rejected rows." in text


def test_import_results_headers_and_parts() -> None:
    approval = Approval("Dana Admin", datetime(2026, 11, 25, 15, 0, tzinfo=UTC), "expected: new school")
    message = reparse(render_import_results(import_results_report(approval=approval), ADMINS[:1], SENDER))

    assert (
        message["Subject"]
        == "[roster_pipeline] Import Results: Springfield Public Schools — import 43 published"
    )
    assert [a.addr_spec for a in message["To"].addresses] == ADMINS[:1]
    assert message["X-Roster-Idempotency-Key"] == "springfield:43:import_results"
    assert message.get_content_type() == "multipart/alternative"
    assert list(message.iter_attachments()) == []

    text, html = parts(message)
    for body in (text, html):
        assert "4 min 12 s" in body and "delta" in body
        assert "20 (2.0%)" in body  # users added, % of published before
        assert "250 (5.0%)" in body  # enrollments deleted
        assert "4,700 (94%)" in body  # unchanged
        assert "7 warning(s)" in body and "class_without_teacher" in body
        assert "Dana Admin" in body and "overridden" in body and "expected: new school" in body
        assert "http://localhost:3000/runs/77aa-run" in body


def test_import_results_without_approval_says_thresholds_passed() -> None:
    text, _ = parts(
        render_import_results(import_results_report(warnings_count=0, top_warnings=[]), ADMINS, SENDER)
    )
    assert "passed" in text and "overridden" not in text and "No warnings." in text


def test_sis_text_is_escaped_in_html_and_cannot_break_headers() -> None:
    evil = '<script>alert("x")</script>'
    report = check_your_data_report(
        district_name="Springfield\r\nBcc: victim@example.org <b>",
        schools=[SchoolThresholdRow(f"School {evil}", "sch-<1>", "users", 100, 10, 20.0)],
        rejected_rows=[
            Reject(
                "users",
                "u-<img src=x onerror=alert(1)>",
                "givenName",
                "required",
                evil,
                f"users: student named {evil}",
            )
        ],
        failed_checks=[FailedCheck("users_schema", f"bad name {evil}")],
    )
    message = reparse(render_check_your_data(report, ADMINS, SENDER))
    _, html = parts(message)
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "Bcc" not in message or message["Bcc"] is None
    assert "\n" not in message["Subject"] and "Springfield Bcc: victim@example.org <b>" in message["Subject"]
    # the CSV keeps the raw value (it is data, not markup)
    assert csv_attachment(message, "rejected_rows.csv")[0]["value"] == evil


def test_csv_cells_that_spreadsheets_would_evaluate_are_neutralised() -> None:
    rejects = [
        Reject("users", "u-1", "givenName", "format", '=HYPERLINK("http://evil")', "m1"),
        Reject("users", "u-2", "grades", "format", "-5", "m2"),
        Reject("users", "u-3", "email", "format", "@SUM(A1)", "m3"),
    ]
    message = render_check_your_data(check_your_data_report(rejected_rows=rejects), ADMINS, SENDER)
    values = [r["value"] for r in csv_attachment(message, "rejected_rows.csv")]
    assert values == ['\'=HYPERLINK("http://evil")', "-5", "'@SUM(A1)"]


def test_large_attachments_are_capped_and_the_body_says_so() -> None:
    report = check_your_data_report(rejected_rows=sample_rejects(120), rejected_total=250_000)
    message = render_check_your_data(report, ADMINS, SENDER, max_attachment_rows=50)
    assert len(csv_attachment(message, "rejected_rows.csv")) == 50
    text, html = parts(message)
    assert "the first 50 of 250,000 rejected rows" in text
    assert "the first 50 of 250,000 rejected rows" in html
    assert "all 3 field changes" in text


def test_idempotency_key_and_message_id_are_stable_per_import_and_kind() -> None:
    first = render_check_your_data(check_your_data_report(), ADMINS, SENDER)
    again = render_check_your_data(check_your_data_report(), ADMINS, SENDER)
    other_import = render_check_your_data(check_your_data_report(import_id=44), ADMINS, SENDER)
    results = render_import_results(import_results_report(import_id=42), ADMINS, SENDER)
    assert first["Message-ID"] == again["Message-ID"]
    assert first["X-Roster-Idempotency-Key"] == again["X-Roster-Idempotency-Key"]
    assert len({first["Message-ID"], other_import["Message-ID"], results["Message-ID"]}) == 3


def test_no_recipients_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="springfield.*no admin_emails"):
        render_check_your_data(check_your_data_report(), [], SENDER)


def test_run_url_comes_from_the_configured_dagster_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROSTER_DAGSTER_URL", "https://dagster.district.example/")
    report = check_your_data_report()
    assert report.run_url == "https://dagster.district.example/runs/0f6c-run"
    _, html = parts(render_check_your_data(report, ADMINS, SENDER))
    assert 'href="https://dagster.district.example/runs/0f6c-run"' in html


def _district() -> District:
    return District(
        id="springfield",
        name="Springfield Public Schools",
        api_host="ic.example",
        app_name="spring",
        client_id_env="SPRINGFIELD_CLIENT_ID",
        client_secret_env="SPRINGFIELD_CLIENT_SECRET",
    )


def test_a_csv_bundle_district_has_no_client_secret_to_scrub_and_its_email_is_still_scanned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A csv_bundle district names no client secret: its list holds only real variable names (a None
    in it made the scan of that district's emails fail with a TypeError)."""
    district = District(id="c", name="C", import_method="csv_bundle", csv_bundle={"path": "/a.zip"})
    assert district.client_secret_env is None
    names = secret_env_names_for(district)
    assert names == []
    monkeypatch.setenv("SMTP_PASSWORD_FOR_TEST", "smtp-Secret-value-42")
    message = EmailMessage()
    message.set_content("the password is smtp-Secret-value-42")
    assert find_secret_leaks(message, [*names, "SMTP_PASSWORD_FOR_TEST"]) == ["SMTP_PASSWORD_FOR_TEST"]


@pytest.mark.parametrize("where", ["failed_check", "attachment_only", "field_change"])
def test_scrubber_refuses_a_message_containing_a_secret(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    secret = "s3cr3t-Client-Value-9f8e7d"
    monkeypatch.setenv("SPRINGFIELD_CLIENT_SECRET", secret)
    names = secret_env_names_for(_district())
    assert names == ["SPRINGFIELD_CLIENT_SECRET"]
    overrides: dict[str, object] = {}
    if where == "failed_check":
        overrides["failed_checks"] = [FailedCheck("auth", f"token request echoed client_secret={secret}")]
    elif where == "attachment_only":
        # Only in the CSV (base64 on the wire; the top-errors table shows a different message).
        overrides["rejected_rows"] = [
            Reject("users", "u-1", "password", "leak", secret, "a value was leaked")
        ]
        overrides["top_errors"] = [TopError("users", "leak", "password", 1, "a value was leaked")]
    else:
        overrides["field_changes"] = [
            {
                "resource": "users",
                "sourced_id": "u",
                "change": "updated",
                "field": "x",
                "old_value": "",
                "new_value": f"prefix {secret} suffix",
            }
        ]
    with pytest.raises(SecretInMessageError) as info:
        render_check_your_data(check_your_data_report(**overrides), ADMINS, SENDER, secret_env_names=names)
    assert "SPRINGFIELD_CLIENT_SECRET" in str(info.value)
    assert secret not in str(info.value) and secret not in repr(info.value)


def test_scrubber_lets_a_clean_message_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPRINGFIELD_CLIENT_SECRET", "s3cr3t-Client-Value-9f8e7d")
    monkeypatch.setenv("ROSTER_SMTP_PASSWORD", "smtp-Pass-1234567")
    secrets = ["SPRINGFIELD_CLIENT_SECRET", "ROSTER_SMTP_PASSWORD"]
    for render, report in (
        (render_check_your_data, check_your_data_report),
        (render_import_results, import_results_report),
    ):
        checked = render(report(), ADMINS, SENDER, secret_env_names=secrets)
        unchecked = render(report(), ADMINS, SENDER, secret_env_names=[])
        assert checked["Subject"] == unchecked["Subject"] and "Springfield" in checked["Subject"]
        assert checked.get_body(("plain",)).get_content() == unchecked.get_body(("plain",)).get_content()
        assert len(list(checked.iter_attachments())) == len(list(unchecked.iter_attachments()))
