"""Sending over a real SMTP server (aiosmtpd on loopback), the outbox, settings and ``deliver``. No mocks."""

from __future__ import annotations

import logging
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from roster_pipeline.notify import (
    EmailDeliveryError,
    OutboxSender,
    SecretInMessageError,
    SmtpConfigError,
    SmtpSender,
    SmtpSettings,
    deliver,
    load_smtp_settings,
    render_check_your_data,
    render_import_results,
    sender_from_env,
)
from roster_pipeline_tests.notify_helpers import (
    ADMINS,
    SENDER,
    check_your_data_report,
    csv_attachment,
    import_results_report,
    parts,
)
from roster_pipeline_tests.smtp_server import SmtpTestServer, free_port

PASSWORD_ENV = "ROSTER_TEST_SMTP_PASSWORD"
PASSWORD = "C0rrect-Horse-Battery-Staple"
WRONG = "Wr0ng-Password-Should-Never-Leak"


def settings_for(server: SmtpTestServer, **overrides: object) -> SmtpSettings:
    fields: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "security": "none",
        "from_address": SENDER,
        "timeout": 5,
    }
    fields.update(overrides)
    return SmtpSettings.model_validate(fields)


def fast(settings: SmtpSettings, **kwargs: object) -> SmtpSender:
    return SmtpSender(settings, backoff_seconds=0.01, max_backoff_seconds=0.05, **kwargs)  # type: ignore[arg-type]


def cyd() -> EmailMessage:
    return render_check_your_data(check_your_data_report(), ADMINS, SENDER)


def test_both_emails_over_smtp_arrive_complete(smtp_server: SmtpTestServer) -> None:  # noqa: F811
    sender = fast(settings_for(smtp_server))
    first = sender.send(cyd())
    second = sender.send(render_import_results(import_results_report(), ADMINS[:1], SENDER))
    assert (first.transport, first.attempts, first.recipients) == ("smtp", 1, ADMINS)
    assert second.recipients == ADMINS[:1]

    check, results = smtp_server.wait_for(2)
    envelopes = smtp_server.envelopes
    assert envelopes[0].rcpt_tos == ADMINS and envelopes[0].mail_from == SENDER
    assert envelopes[1].rcpt_tos == ADMINS[:1]

    assert (
        check["Subject"] == "[roster_pipeline] Check Your Data: Springfield Public Schools — import 42 paused"
    )
    assert check["Message-ID"] == first.message_id
    assert check["X-Roster-Idempotency-Key"] == "springfield:42:check_your_data"
    text, html = parts(check)
    assert "62% of enrollments would be deleted" in text and "62% of enrollments would be deleted" in html
    assert [r["sourced_id"] for r in csv_attachment(check, "rejected_rows.csv")] == ["u-1", "e-9", "u-2"]
    assert [r["new_value"] for r in csv_attachment(check, "field_changes.csv")] == ["Smith-Jones", "José", ""]

    assert (
        results["Subject"]
        == "[roster_pipeline] Import Results: Springfield Public Schools — import 43 published"
    )
    assert results["X-Roster-Idempotency-Key"] == "springfield:43:import_results"
    text, html = parts(results)
    assert "4 min 12 s" in text and "4 min 12 s" in html


def test_smtp_auth_login_succeeds(smtp_server_factory, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    server = smtp_server_factory(username="roster", password=PASSWORD)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    result = fast(settings_for(server, username="roster", password_env=PASSWORD_ENV)).send(cyd())
    assert result.attempts == 1
    assert server.envelopes[0].login == "roster"
    assert server.auth_attempts == [("roster", True)]


def test_smtp_wrong_password_is_a_clear_error_without_the_password(
    smtp_server_factory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,  # noqa: F811
    capfd: pytest.CaptureFixture[str],
) -> None:
    server = smtp_server_factory(username="roster", password=PASSWORD)
    monkeypatch.setenv(PASSWORD_ENV, WRONG)
    caplog.set_level(logging.DEBUG)
    sender = fast(settings_for(server, username="roster", password_env=PASSWORD_ENV))
    with pytest.raises(EmailDeliveryError) as info:
        sender.send(cyd())
    error = info.value
    assert error.attempts == 1 and not error.transient  # 535 is permanent: not retried
    assert f"{server.host}:{server.port}" in str(error)
    assert all(admin in str(error) for admin in ADMINS)
    assert "535" in str(error) and PASSWORD_ENV in str(error)
    assert error.__cause__ is None and error.__context__ is not None  # raised "from None"
    captured = capfd.readouterr()
    for text in (
        str(error),
        repr(error),
        repr(sender),
        caplog.text,
        captured.out,
        captured.err,
        repr(sender.settings),
        str(error.__dict__),
    ):
        assert WRONG not in text and PASSWORD not in text
    # smtplib tries each mechanism the server offers (PLAIN, LOGIN) on the one connection: all refused
    assert server.auth_attempts and all(login == "roster" and not ok for login, ok in server.auth_attempts)
    assert server.envelopes == []
    # deliver reports the same failure instead of raising
    outcome = deliver(cyd(), sender)
    assert not outcome.ok and outcome.error_text is not None and WRONG not in outcome.error_text
    assert outcome.idempotency_key == "springfield:42:check_your_data"


def test_smtp_user_without_password_variable_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    settings = SmtpSettings(
        host="127.0.0.1",
        port=free_port(),
        security="none",
        username="roster",
        password_env=PASSWORD_ENV,
        from_address=SENDER,
    )
    with pytest.raises(EmailDeliveryError, match=f"{PASSWORD_ENV}.*empty") as info:
        fast(settings).send(cyd())
    assert info.value.attempts == 0


def test_smtp_down_is_retried_then_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nobody listens here
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", from_address=SENDER, timeout=2)
    caplog.set_level(logging.WARNING, logger="roster_pipeline.notify")
    with pytest.raises(EmailDeliveryError) as info:
        fast(settings).send(cyd())
    error = info.value
    assert error.attempts == 3 and error.transient
    assert f"127.0.0.1:{port}" in str(error) and "after 3 attempt(s)" in str(error)
    assert "ConnectionRefusedError" in str(error)
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2 and all(f"127.0.0.1:{port}" in r.getMessage() for r in retries)

    outcome = deliver(cyd(), fast(settings))
    assert not outcome.ok and outcome.attempts == 3 and f"127.0.0.1:{port}" in (outcome.error_text or "")


def test_temporary_4xx_is_retried_and_then_delivered(smtp_server: SmtpTestServer) -> None:  # noqa: F811
    smtp_server.fail_next_data(1, code=451)
    result = fast(settings_for(smtp_server)).send(cyd())
    assert result.attempts == 2
    assert len(smtp_server.wait_for(1)) == 1


def test_permanent_5xx_is_not_retried(smtp_server: SmtpTestServer) -> None:  # noqa: F811
    smtp_server.fail_next_data(1, code=554, text="Transaction failed: policy")
    with pytest.raises(EmailDeliveryError, match="554") as info:
        fast(settings_for(smtp_server)).send(cyd())
    assert info.value.attempts == 1 and not info.value.transient
    assert smtp_server.envelopes == []


def test_starttls_with_auth(smtp_server_factory, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    server = smtp_server_factory(username="roster", password=PASSWORD, starttls=True)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    settings = settings_for(
        server, security="starttls", username="roster", password_env=PASSWORD_ENV, ca_file=str(server.ca_file)
    )
    result = fast(settings).send(cyd())
    assert result.attempts == 1
    envelope = server.envelopes[0]
    assert envelope.tls and envelope.login == "roster"


def test_starttls_with_an_untrusted_certificate_fails_at_once(smtp_server_factory) -> None:  # noqa: F811
    server = smtp_server_factory(starttls=True)
    with pytest.raises(EmailDeliveryError, match="SSLCertVerificationError") as info:
        fast(settings_for(server, security="starttls")).send(cyd())
    assert info.value.attempts == 1 and not info.value.transient
    assert server.envelopes == []


def test_sender_refuses_a_message_containing_the_smtp_password(
    smtp_server: SmtpTestServer,
    monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    from roster_pipeline.notify import FailedCheck

    leaky = render_check_your_data(
        check_your_data_report(failed_checks=[FailedCheck("x", f"password is {PASSWORD}")]), ADMINS, SENDER
    )
    sender = fast(settings_for(smtp_server, username="roster", password_env=PASSWORD_ENV))
    with pytest.raises(SecretInMessageError, match=PASSWORD_ENV):
        sender.send(leaky)
    outcome = deliver(leaky, sender)
    assert (
        not outcome.ok
        and PASSWORD not in (outcome.error_text or "")
        and PASSWORD_ENV in (outcome.error_text or "")
    )
    assert smtp_server.envelopes == []


def test_outbox_writes_eml_files_that_parse_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="roster_pipeline.notify")
    outbox = OutboxSender(tmp_path / "outbox")
    outcome = deliver(cyd(), outbox)
    assert outcome.ok and outcome.transport == "outbox" and outcome.error_text is None
    path = Path(outcome.path_or_id or "")
    assert path.parent == tmp_path / "outbox"
    assert re.fullmatch(r"\d{8}T\d{12}Z_springfield_check_your_data_import-42\.eml", path.name)
    assert str(path) in caplog.text
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left behind

    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(message, EmailMessage)
    assert (
        message["Subject"]
        == "[roster_pipeline] Check Your Data: Springfield Public Schools — import 42 paused"
    )
    assert [a.addr_spec for a in message["To"].addresses] == ADMINS
    text, html = parts(message)
    assert "review_approve" in text and "review_approve" in html
    assert len(csv_attachment(message, "rejected_rows.csv")) == 3
    assert b"\r\n" in path.read_bytes()

    second = deliver(render_import_results(import_results_report(), ADMINS, SENDER), outbox)
    assert second.ok and Path(second.path_or_id or "").name.endswith(
        "_springfield_import_results_import-43.eml"
    )


def test_outbox_refuses_secrets_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPRINGFIELD_CLIENT_SECRET", "s3cr3t-Client-Value-9f8e7d")
    from roster_pipeline.notify import FailedCheck

    leaky = render_check_your_data(
        check_your_data_report(failed_checks=[FailedCheck("auth", "s3cr3t-Client-Value-9f8e7d")]),
        ADMINS,
        SENDER,
    )
    outcome = deliver(leaky, OutboxSender(tmp_path, secret_env_names=["SPRINGFIELD_CLIENT_SECRET"]))
    assert not outcome.ok and "SPRINGFIELD_CLIENT_SECRET" in (outcome.error_text or "")
    assert list(tmp_path.iterdir()) == []


def test_settings_from_env() -> None:
    assert load_smtp_settings({}) is None
    assert load_smtp_settings({"ROSTER_SMTP_HOST": "  "}) is None
    settings = load_smtp_settings({"ROSTER_SMTP_HOST": "smtp.example.org", "ROSTER_EMAIL_FROM": SENDER})
    assert settings is not None
    assert (settings.port, settings.security, settings.username, settings.password_env) == (
        587,
        "starttls",
        None,
        "ROSTER_SMTP_PASSWORD",
    )
    settings = load_smtp_settings(
        {
            "ROSTER_SMTP_HOST": "smtp.example.org",
            "ROSTER_SMTP_SECURITY": "SSL",
            "ROSTER_SMTP_USER": "u",
            "ROSTER_SMTP_PASSWORD_ENV": "MY_VAULT_SMTP",
            "MY_VAULT_SMTP": "pw-from-vault",
            "ROSTER_EMAIL_FROM": SENDER,
            "ROSTER_SMTP_TIMEOUT": "12.5",
        }
    )
    assert settings is not None
    assert (settings.port, settings.security, settings.timeout) == (465, "ssl", 12.5)
    assert settings.password({"MY_VAULT_SMTP": "pw-from-vault"}) == "pw-from-vault"
    assert "pw-from-vault" not in repr(settings)

    with pytest.raises(SmtpConfigError, match="ROSTER_EMAIL_FROM"):
        load_smtp_settings({"ROSTER_SMTP_HOST": "smtp.example.org"})
    with pytest.raises(SmtpConfigError) as info:
        load_smtp_settings(
            {
                "ROSTER_SMTP_HOST": "h",
                "ROSTER_EMAIL_FROM": SENDER,
                "ROSTER_SMTP_PASSWORD_ENV": "hunter2-actual-password!",
            }
        )
    assert "hunter2" not in str(info.value) and "password_env" in str(info.value)
    with pytest.raises(SmtpConfigError, match="security"):
        load_smtp_settings(
            {"ROSTER_SMTP_HOST": "h", "ROSTER_EMAIL_FROM": SENDER, "ROSTER_SMTP_SECURITY": "tls"}
        )


def test_sender_from_env_picks_smtp_or_outbox(tmp_path: Path) -> None:
    outbox = sender_from_env(tmp_path, environ={})
    assert isinstance(outbox, OutboxSender) and outbox.folder == tmp_path
    smtp = sender_from_env(
        tmp_path, environ={"ROSTER_SMTP_HOST": "smtp.example.org", "ROSTER_EMAIL_FROM": SENDER}
    )
    assert isinstance(smtp, SmtpSender) and smtp.settings.address == "smtp.example.org:587"


def test_sender_from_env_sends_through_the_configured_server(
    smtp_server: SmtpTestServer, tmp_path: Path
) -> None:  # noqa: F811
    env = {
        "ROSTER_SMTP_HOST": smtp_server.host,
        "ROSTER_SMTP_PORT": str(smtp_server.port),
        "ROSTER_SMTP_SECURITY": "none",
        "ROSTER_EMAIL_FROM": SENDER,
    }
    outcome = deliver(cyd(), sender_from_env(tmp_path, environ=env))
    assert outcome.ok and outcome.transport == "smtp" and outcome.path_or_id == cyd()["Message-ID"]
    assert len(smtp_server.wait_for(1)) == 1
    assert list(tmp_path.iterdir()) == []
