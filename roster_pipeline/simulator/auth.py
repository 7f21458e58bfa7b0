"""OAuth2 client-credentials tokens the way Infinite Campus issues them: one app, one bearer token.

Tokens are opaque random strings bound to the app that requested them, so a token obtained for
district A is rejected under district B's base URL, as a real multi-tenant SIS does.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote


class TokenState(Enum):
    VALID = "valid"
    MISSING = "missing"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    OTHER_APP = "other_app"


@dataclass
class _Issued:
    app_name: str
    expires_at: float


class TokenStore:
    """Issued tokens; thread-safe. ``clock`` is injectable so expiry can be tested without sleeping."""

    def __init__(self, ttl_seconds: int = 3600, clock: Callable[[], float] | None = None) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock or time.time
        self._tokens: dict[str, _Issued] = {}
        self._lock = threading.Lock()

    def issue(self, app_name: str) -> tuple[str, int]:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            # Drop long-expired tokens so a client that re-authenticates per request cannot grow us.
            stale = [t for t, i in self._tokens.items() if i.expires_at < now - 3600]
            for t in stale:
                del self._tokens[t]
            self._tokens[token] = _Issued(app_name, now + self.ttl_seconds)
        return token, self.ttl_seconds

    def check(self, token: str | None, app_name: str) -> TokenState:
        if not token:
            return TokenState.MISSING
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None:
            return TokenState.UNKNOWN
        if issued.app_name != app_name:
            return TokenState.OTHER_APP
        if self._clock() >= issued.expires_at:
            return TokenState.EXPIRED
        return TokenState.VALID

    def expire_all(self) -> None:
        """Every issued token is expired as of now (clients must notice 401 and re-authenticate)."""
        now = self._clock()
        with self._lock:
            for issued in self._tokens.values():
                issued.expires_at = min(issued.expires_at, now)

    def revoke_all(self) -> None:
        """Forget every issued token (they become unknown, as after an SIS restart or key rotation)."""
        with self._lock:
            self._tokens.clear()


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """Client id and secret from an ``Authorization: Basic`` header, or None if absent/garbled.

    RFC 6749 §2.3.1 says both parts are form-urlencoded before base64; decoding them again is
    harmless for plain values and right for ones with special characters.
    """
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if ":" not in decoded:
        return None
    client_id, client_secret = decoded.split(":", 1)
    return unquote(client_id), unquote(client_secret)


def secrets_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def bearer_token(header: str | None) -> str | None:
    if not header or header[:7].lower() != "bearer ":
        return None
    return header[7:].strip() or None
