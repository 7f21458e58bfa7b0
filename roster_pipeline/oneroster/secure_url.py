"""Which SIS URLs the pipeline may send credentials and bearer tokens to.

The token request carries the district's client secret and every API request a bearer token, and the
responses carry student records: over plain HTTP any network hop could read or alter them. So token
and API URLs must be ``https`` — except on loopback (``127.0.0.0/8``, ``::1``, ``localhost``), where no
network is crossed and where the project's own simulator runs.  The registry checks this when it loads
(naming the district and field), and the client configuration checks it again, so a URL built any
other way (a script, a test, a future vendor module) cannot bypass it.

Messages never echo a whole URL: only its scheme and host, because a URL may carry credentials in its
user-info or query string.
"""

from __future__ import annotations

import ipaddress
import ssl
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost"})
SECURE_SCHEME = "https"


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, any 127.0.0.0/8 address and ``::1`` (brackets and case ignored)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """Why ``url`` may not receive credentials, or None when it may (https, or http on loopback)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "is not a valid URL"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return "must be an absolute https:// URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials in the URL (use client_id_env / client_secret_env)"
    if scheme != SECURE_SCHEME and not is_loopback_host(host):
        return (
            f"must use https (TLS): {scheme}://{host} would send the client secret, tokens and student records "
            "unencrypted; plain http is allowed only on loopback (127.0.0.0/8, ::1, localhost)"
        )
    return None


class InsecureURLError(Exception):
    """A token or API URL that may not receive credentials; names the district and the field.

    Deliberately not a ValueError: raised inside a pydantic validator it propagates as itself instead of
    becoming a ValidationError, whose text would quote the model's whole input (client secret included).
    """

    def __init__(self, district_id: str, field: str, problem: str) -> None:
        self.district_id = district_id
        self.field = field
        super().__init__(f"district {district_id!r}: {field} {problem}")


def require_secure_url(url: str, field: str, district_id: str) -> str:
    """Return ``url`` if it may receive credentials; raise InsecureURLError naming district and field."""
    problem = url_problem(url)
    if problem is not None:
        raise InsecureURLError(district_id, field, problem)
    return url


def transport_reason(exc: BaseException) -> str:
    """A transport failure for a log or error: its class name only (httpx messages may quote the URL), or a
    plain sentence when the cause is an untrusted TLS certificate, which the operator has to act on."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"{type(exc).__name__}: TLS certificate verification failed (a private CA? point SSL_CERT_FILE "
                "at its bundle; verification is never turned off)"
            )
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


__all__ = [
    "LOOPBACK_NAMES",
    "InsecureURLError",
    "is_loopback_host",
    "require_secure_url",
    "transport_reason",
    "url_problem",
]
