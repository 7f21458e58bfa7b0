"""OAuth 1.0a request signatures the way a OneRoster 1.1 SIS in that mode checks them (two-legged).

Every API request must carry ``Authorization: OAuth ...`` with the tenant's consumer key, an
``oauth_signature_method`` of HMAC-SHA256, a timestamp within ``max_skew_seconds`` of the server's clock,
a nonce not seen before, and an HMAC-SHA256 signature over the method, URL and query parameters keyed
by the tenant's consumer secret. The verification is oauthlib's (``SignatureOnlyEndpoint``, the same
library the pipeline's client signs with); this module only supplies what oauthlib asks a server for
(the tenant's key and secret, the nonce memory) and turns a refusal into a reason a person can act on.

A refusal names what was wrong (unknown key, stale timestamp, reused nonce, signature mismatch), never a
secret or the signature.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from oauthlib.oauth1 import RequestValidator, SignatureOnlyEndpoint
from oauthlib.oauth1.rfc5849 import SIGNATURE_HMAC_SHA256

#: A request whose oauth_timestamp is further than this from the server's clock is refused.
DEFAULT_MAX_SKEW_SECONDS = 300

STALE_TIMESTAMP = "stale oauth_timestamp: more than {skew} seconds away from the server's clock"
REUSED_NONCE = "oauth_nonce already used: the request was replayed"
UNKNOWN_KEY = "unknown oauth_consumer_key for this application"
BAD_SIGNATURE = "oauth_signature does not match (wrong consumer secret, or the request was altered)"
WRONG_METHOD = f"oauth_signature_method must be {SIGNATURE_HMAC_SHA256}"
MALFORMED = (
    "missing or malformed OAuth 1.0a parameters: an Authorization: OAuth header needs oauth_consumer_key, "
    f"oauth_signature_method={SIGNATURE_HMAC_SHA256}, oauth_timestamp, oauth_nonce, oauth_version=1.0 and "
    "oauth_signature"
)


class NonceStore:
    """Nonces seen within the skew window, per application and consumer key; thread-safe.

    A nonce only needs remembering while its timestamp is still acceptable: older requests are refused
    for their timestamp anyway, so entries are forgotten once ``window`` seconds have passed.
    """

    def __init__(self, window: float, clock: Callable[[], float] = time.time) -> None:
        self._window = window
        self._clock = clock
        self._seen: set[tuple[str, str, str]] = set()
        self._expiry: deque[tuple[float, tuple[str, str, str]]] = deque()
        self._lock = threading.Lock()

    def first_use(self, app_name: str, client_key: str, nonce: str) -> bool:
        """True the first time a nonce is presented (it is remembered), False on every later use."""
        key = (app_name, client_key, nonce)
        now = self._clock()
        with self._lock:
            while self._expiry and self._expiry[0][0] < now:
                self._seen.discard(self._expiry.popleft()[1])
            if key in self._seen:
                return False
            self._seen.add(key)
            # Kept for twice the window: a timestamp may lie up to one window in the future.
            self._expiry.append((now + 2 * self._window, key))
            return True


class _TenantValidator(RequestValidator):
    """What oauthlib asks of the server, for one tenant; remembers why a request was refused."""

    def __init__(
        self,
        app_name: str,
        consumer_key: str,
        consumer_secret: str,
        nonces: NonceStore,
        max_skew_seconds: int,
    ) -> None:
        super().__init__()
        self._app_name = app_name
        self._consumer_key = consumer_key
        self._consumer_secret = consumer_secret
        self._nonces = nonces
        self._max_skew = max_skew_seconds
        self.refusal: str | None = None

    # The simulator serves plain HTTP on loopback (the client allows that only there).
    enforce_ssl = False

    @property
    def allowed_signature_methods(self) -> tuple[str, ...]:
        return (SIGNATURE_HMAC_SHA256,)

    @property
    def timestamp_lifetime(self) -> int:
        return self._max_skew

    @property
    def dummy_client(self) -> str:
        # Used in place of an unknown key so a refusal takes as long as an acceptance (no key probing).
        return "simulator-dummy-consumer"

    def check_client_key(self, client_key: str) -> bool:
        # Keys are whatever the tenant was configured with (e.g. "demo-client"), not oauthlib's 20-30
        # alphanumerics.
        return 0 < len(client_key) <= 256 and client_key.isprintable()

    def check_nonce(self, nonce: str) -> bool:
        return 0 < len(nonce) <= 256 and nonce.isprintable()

    def validate_client_key(self, client_key: str, request: Any) -> bool:
        if client_key == self._consumer_key:
            return True
        self.refusal = self.refusal or UNKNOWN_KEY
        return False

    def get_client_secret(self, client_key: str, request: Any) -> str:
        return self._consumer_secret if client_key == self._consumer_key else "simulator-dummy-secret"

    def validate_timestamp_and_nonce(
        self,
        client_key: str,
        timestamp: str,
        nonce: str,
        request: Any,
        request_token: Any = None,
        access_token: Any = None,
    ) -> bool:
        if self._nonces.first_use(self._app_name, client_key, nonce):
            return True
        self.refusal = REUSED_NONCE
        return False


class SignatureVerifier:
    """Checks one API request's OAuth 1.0a signature against the tenant's consumer key and secret."""

    def __init__(self, max_skew_seconds: int = DEFAULT_MAX_SKEW_SECONDS) -> None:
        self.max_skew_seconds = max_skew_seconds
        self._nonces = NonceStore(max_skew_seconds)

    def refusal(
        self,
        app_name: str,
        consumer_key: str,
        consumer_secret: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
    ) -> str | None:
        """None when the request is correctly signed; otherwise why it is refused (no secret in it).

        ``url`` is the absolute URL as the client addressed it (scheme, Host header, raw path and query).
        """
        validator = _TenantValidator(
            app_name, consumer_key, consumer_secret, self._nonces, self.max_skew_seconds
        )
        endpoint = SignatureOnlyEndpoint(validator)
        try:
            valid, request = endpoint.validate_request(
                url, http_method=method, body=None, headers=dict(headers)
            )
        except ValueError:
            # oauthlib's parsers raise this for an Authorization header that is not OAuth (a bearer token)
            # or a query string that is not form-encoded.
            return MALFORMED
        if valid:
            return None
        if validator.refusal is not None:
            return validator.refusal
        if request is not None and request.validator_log.get("signature") is False:
            return BAD_SIGNATURE
        return self._malformed_reason(request)

    def _malformed_reason(self, request: Any) -> str:
        """oauthlib refused the request before asking us anything: say which of its checks it was."""
        if request is None:
            return MALFORMED
        method = getattr(request, "signature_method", None)
        if method and method != SIGNATURE_HMAC_SHA256:
            return WRONG_METHOD
        timestamp = getattr(request, "timestamp", None) or ""
        if timestamp.isdigit() and abs(time.time() - int(timestamp)) > self.max_skew_seconds:
            return STALE_TIMESTAMP.format(skew=self.max_skew_seconds)
        return MALFORMED
