"""Email notifications: the Check Your Data and Import Results emails, and how they are sent.

``content`` holds the data an email shows, ``render`` turns it into an EmailMessage, ``sender`` sends it
(SMTP or an outbox folder) and ``deliver`` does so without ever raising into an import.  ``settings``
reads the ``ROSTER_SMTP_*`` variables; ``scrub`` refuses any message that contains a secret.
"""

from roster_pipeline.notify.content import (
    Approval,
    CheckYourDataReport,
    DerivedTableWarning,
    FailedCheck,
    ImportResultsReport,
    ResourceCountsRow,
    ResourceThresholdRow,
    ReviewAction,
    RunFailure,
    SchoolThresholdRow,
    TopError,
    dagster_run_url,
    failure_actions,
    review_actions,
    summarize_rejects,
)
from roster_pipeline.notify.render import (
    IDEMPOTENCY_HEADER,
    idempotency_key,
    render_check_your_data,
    render_import_results,
)
from roster_pipeline.notify.scrub import (
    SecretInMessageError,
    assert_no_secrets,
    find_secret_leaks,
    secret_env_names_for,
)
from roster_pipeline.notify.sender import (
    DeliveryOutcome,
    EmailDeliveryError,
    OutboxSender,
    SendResult,
    SmtpSender,
    deliver,
    sender_from_env,
)
from roster_pipeline.notify.settings import SmtpConfigError, SmtpSettings, email_from, load_smtp_settings

__all__ = [
    "IDEMPOTENCY_HEADER",
    "Approval",
    "CheckYourDataReport",
    "DerivedTableWarning",
    "DeliveryOutcome",
    "EmailDeliveryError",
    "FailedCheck",
    "ImportResultsReport",
    "OutboxSender",
    "ResourceCountsRow",
    "ResourceThresholdRow",
    "ReviewAction",
    "RunFailure",
    "SchoolThresholdRow",
    "SecretInMessageError",
    "SendResult",
    "SmtpConfigError",
    "SmtpSender",
    "SmtpSettings",
    "TopError",
    "assert_no_secrets",
    "dagster_run_url",
    "deliver",
    "email_from",
    "failure_actions",
    "find_secret_leaks",
    "idempotency_key",
    "load_smtp_settings",
    "render_check_your_data",
    "render_import_results",
    "review_actions",
    "secret_env_names_for",
    "sender_from_env",
    "summarize_rejects",
]
