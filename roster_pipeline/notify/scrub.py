"""A last line of defence: never render or send an email that contains a credential.

The report dataclasses carry no credentials, so this should never fire; it exists because a secret can
still slip in through data (an error message that echoed a token, a misconfigured SIS putting its
client secret in a field).  The check decodes every part (base64, quoted-printable, RFC 2047 headers)
before searching, since a secret in an attachment is base64 on the wire.  Errors name the environment
variable, never the value.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from email.message import EmailMessage, Message
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roster_pipeline.notify.settings import SmtpSettings
    from roster_pipeline.registry.districts import District

# Values this short are not credentials and would match ordinary text by chance.
MIN_SECRET_LENGTH = 6


class SecretInMessageError(RuntimeError):
    """The message contains the value of a secret environment variable; it was not rendered/sent."""

    def __init__(self, env_names: list[str]) -> None:
        self.env_names = env_names
        super().__init__(
            "refusing to render or send an email containing the value of secret environment variable(s) "
            f"{', '.join(env_names)} (value not shown)"
        )


def secret_values(env_names: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{NAME: value}`` of the named variables that are set to something long enough to search for."""
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for name in env_names:
        value = env.get(name, "")
        if value and len(value.strip()) >= MIN_SECRET_LENGTH:
            found[name] = value.strip()
    return found


def _message_texts(message: Message) -> Iterable[str]:
    for key, value in message.items():
        yield f"{key}: {value}"
    for part in message.walk():
        for key, value in part.items():
            yield f"{key}: {value}"
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            charset = part.get_content_charset() or "utf-8"
            try:
                yield payload.decode(charset, errors="replace")
            except LookupError:
                yield payload.decode("utf-8", errors="replace")
            yield payload.decode("latin-1")


def find_secret_leaks(
    message: EmailMessage, env_names: Iterable[str], environ: Mapping[str, str] | None = None
) -> list[str]:
    """Names of the variables whose value appears anywhere in the message (decoded or on the wire)."""
    secrets = secret_values(env_names, environ)
    if not secrets:
        return []
    texts = list(_message_texts(message))
    texts.append(message.as_string())
    leaks: list[str] = []
    for name, value in secrets.items():
        needles = {value, base64.b64encode(value.encode()).decode()}
        if any(needle in text for text in texts for needle in needles):
            leaks.append(name)
    return leaks


def assert_no_secrets(
    message: EmailMessage, env_names: Iterable[str], environ: Mapping[str, str] | None = None
) -> None:
    """Raise SecretInMessageError (naming variables only) if any named secret appears in the message."""
    leaks = find_secret_leaks(message, env_names, environ)
    if leaks:
        raise SecretInMessageError(leaks)


def redact(text: str, values: Iterable[str | None]) -> str:
    """``text`` with each value, and its base64 form (SMTP AUTH sends base64), replaced by ``***``."""
    for value in values:
        if value:
            text = text.replace(value, "***").replace(base64.b64encode(value.encode()).decode(), "***")
    return text


def secret_env_names_for(district: District | None = None, smtp: SmtpSettings | None = None) -> list[str]:
    """The variables whose values must never appear in an email: the district's client secret and the
    SMTP password.  (The client id is not a secret on its own and may legitimately be quoted.)"""
    names: list[str] = []
    if district is not None and district.client_secret_env is not None:  # a csv_bundle district names none
        names.append(district.client_secret_env)
    if smtp is not None:
        names += smtp.secret_env_names()
    return names


__all__ = [
    "MIN_SECRET_LENGTH",
    "SecretInMessageError",
    "assert_no_secrets",
    "find_secret_leaks",
    "redact",
    "secret_env_names_for",
    "secret_values",
]
