"""Two-legged OAuth 1.0a request signing (HMAC-SHA256), as the IMS OneRoster 1.1 spec describes it.

Some SIS still serve OneRoster 1.1 this way (Infinite Campus retired it in 2023): no token endpoint and
no token; every request carries ``Authorization: OAuth oauth_consumer_key, oauth_signature_method=
"HMAC-SHA256", oauth_timestamp, oauth_nonce, oauth_version="1.0", oauth_signature``, where the signature
is an HMAC-SHA256, keyed by the consumer secret, over the method, the URL and every query parameter.

Library choice. The signature comes from oauthlib (``oauthlib.oauth1.Client``), not from our own code:
the fiddly part of OAuth 1.0a is the signature base string (RFC 5849 §3.4.1: parameter collection,
percent-encoding, sorting, URL normalisation), which has to match the server's byte for byte, and
oauthlib implements HMAC-SHA256 for both signing and verifying (the simulator verifies with the same
library). authlib, already a dependency for OAuth2, only ships HMAC-SHA1, RSA-SHA1 and PLAINTEXT for
OAuth 1 clients; adding SHA256 there would mean writing the HMAC ourselves.

What is signed is exactly what is sent: httpx has already merged and encoded the query parameters
into ``request.url`` when the auth flow runs, so the signature covers the final URL (and a retry is
signed afresh, with a new nonce and timestamp).

Secrets. The consumer secret lives only inside the oauthlib client (whose repr masks it); oauthlib logs
each signature at DEBUG, so its signing logger gets a filter that drops its DEBUG records.
"""

from __future__ import annotations

import logging
from collections.abc import Generator

import httpx
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, SIGNATURE_TYPE_AUTH_HEADER, Client

#: The signature method OneRoster 1.1 requires of OAuth 1.0a consumers.
SIGNATURE_METHOD = SIGNATURE_HMAC_SHA256

#: oauthlib's signing logger: at DEBUG it writes the signature base string and the signature itself.
_OAUTHLIB_SIGNING_LOGGER = "oauthlib.oauth1.rfc5849"


class _DropDebug(logging.Filter):
    """Drops DEBUG records: oauthlib's signing logger writes the request signature at that level."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def _silence_signature_logging() -> None:
    logger = logging.getLogger(_OAUTHLIB_SIGNING_LOGGER)
    if not any(isinstance(f, _DropDebug) for f in logger.filters):
        logger.addFilter(_DropDebug())


_silence_signature_logging()


class OAuth1Auth(httpx.Auth):
    """httpx auth flow: sign every request (each retry too) with a fresh nonce and timestamp.

    There is nothing to renew: a 401 means the SIS refused the signature (wrong key or secret, a clock
    more than a few minutes off), and resending would only repeat that, so the response goes back to
    the client, which raises an AuthenticationError naming the district and endpoint.
    """

    def __init__(self, consumer_key: str, consumer_secret: str) -> None:
        self._consumer_key = consumer_key
        self._signer = Client(
            consumer_key,
            client_secret=consumer_secret,
            signature_method=SIGNATURE_METHOD,
            signature_type=SIGNATURE_TYPE_AUTH_HEADER,
        )

    def __repr__(self) -> str:
        return f"OAuth1Auth(consumer_key={self._consumer_key!r}, signature_method={SIGNATURE_METHOD!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # GETs only (the client is read-only): no body takes part in the signature.
        _, headers, _ = self._signer.sign(str(request.url), http_method=request.method)
        request.headers["Authorization"] = headers["Authorization"]
        yield request
