"""OAuth2 client credentials for one district: fetch, cache, renew early, renew once on a 401.

Library choice. The protocol parts come from authlib's framework-neutral OAuth2 core
(``ClientAuth`` for ``client_secret_basic`` / ``client_secret_post`` encoding,
``prepare_token_request`` for the grant body). We deliberately do not use authlib's httpx
integration (``authlib.integrations.httpx_client.OAuth2Client``) because, in authlib 1.9:

* importing it warns ``AuthlibDeprecationWarning: The httpx module is deprecated; please use httpx2``
  on every import — that integration is moving to the ``httpx2`` package, while this project pins httpx;
* its synchronous client renews an expiring token without a lock, so five page-fetching threads
  crossing the expiry at once each POST to the token endpoint (the async client has a lock, the sync
  one does not);
* it does not renew on a 401, which Infinite Campus returns when a token is revoked early.

So the small stateful part — cache, lock, early renewal, invalidate-on-401 — lives here, and the
request is sent with a plain ``httpx.Client``. The access token and client secret are kept in private
attributes and never formatted into logs, exception messages or reprs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator

import httpx
import orjson
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request

from roster_pipeline.oneroster.config import ClientConfig
from roster_pipeline.oneroster.errors import AuthenticationError, ImsxStatus
from roster_pipeline.oneroster.retry import TransientFailure, parse_retry_after
from roster_pipeline.oneroster.secure_url import transport_reason

log = logging.getLogger(__name__)

TOKEN_ENDPOINT_LABEL = "token"
_AUTH_METHODS = {"basic": "client_secret_basic", "form": "client_secret_post"}


class TokenManager:
    """Hands out a valid bearer token to any number of threads, fetching at most one at a time.

    Renewal happens ``margin`` seconds before ``expires_in`` runs out, where the margin is the
    configured one but never more than half the token's lifetime (a 2-second test token with a
    60-second margin would otherwise be renewed on every request).
    """

    def __init__(
        self,
        config: ClientConfig,
        http: httpx.Client,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._district_id = config.district_id
        self._token_url = config.token_url
        self._scope = config.token_scope
        self._client_auth = ClientAuth(
            config.client_id, config.client_secret.get_secret_value(), _AUTH_METHODS[config.token_auth]
        )
        self._retry_statuses = config.retry_statuses
        self._margin = config.token_renew_margin_seconds
        self._http = http
        self._clock = clock
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._renew_at: float | None = None
        self.fetches = 0

    @property
    def district_id(self) -> str:
        return self._district_id

    def __repr__(self) -> str:
        state = "cached" if self._access_token else "none"
        return (
            f"TokenManager(district_id={self._district_id!r}, token_url={self._token_url!r}, token={state})"
        )

    def access_token(self) -> str:
        """A token that is not about to expire, fetching a new one if needed (one thread fetches)."""
        with self._lock:
            if self._access_token is None or (self._renew_at is not None and self._clock() >= self._renew_at):
                self._fetch_locked()
            assert self._access_token is not None
            return self._access_token

    def replacement_for(self, rejected_token: str) -> tuple[str, bool]:
        """After a 401 with ``rejected_token``: the token to resend with, and whether it was fetched now.

        ``False`` means another thread had already renewed, so the replacement was issued *before* this
        401 and may have been revoked by the same event; the caller may then try once more.
        """
        with self._lock:
            if self._access_token == rejected_token:
                self._access_token = None
                self._renew_at = None
            if self._access_token is None:
                self._fetch_locked()
                assert self._access_token is not None
                return self._access_token, True
            return self._access_token, False

    def invalidate(self, rejected_token: str) -> None:
        """Forget ``rejected_token`` after a 401 — unless another thread already replaced it."""
        with self._lock:
            if self._access_token == rejected_token:
                self._access_token = None
                self._renew_at = None

    def _fetch_locked(self) -> None:
        body = prepare_token_request("client_credentials", "", scope=self._scope)  # no scope: left out
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        url, headers, body = self._client_auth.prepare("POST", self._token_url, headers, body)
        started = self._clock()
        log.debug("district %s: requesting an access token", self._district_id)
        try:
            response = self._http.post(url, content=body.encode("utf-8"), headers=headers)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            # Retried like any transient failure, but the error must say it was the token endpoint that
            # was down, not the API endpoint whose request needed the token. Class name only, as elsewhere.
            raise TransientFailure(f"token endpoint {transport_reason(exc)}") from None
        self.fetches += 1
        token, expires_in = self._parse(response)
        self._access_token = token
        if expires_in is not None and expires_in > 0:
            margin = min(self._margin, expires_in / 2)
            self._renew_at = started + expires_in - margin
        else:
            self._renew_at = None  # no lifetime given: keep it until the API answers 401
        log.debug("district %s: access token obtained (expires_in=%s)", self._district_id, expires_in)

    def _parse(self, response: httpx.Response) -> tuple[str, float | None]:
        status = response.status_code
        if status in self._retry_statuses or status >= 500:
            raise TransientFailure(
                f"token endpoint HTTP {status}",
                status=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if 300 <= status < 400:
            # Never followed: the redirect would carry the client secret to wherever Location points.
            raise AuthenticationError(
                f"token endpoint answered HTTP {status} (a redirect), which is not followed; set token_url to the "
                "token endpoint's final https URL",
                district_id=self._district_id,
                endpoint=TOKEN_ENDPOINT_LABEL,
                status=status,
            )
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            payload = None
        if status >= 400:
            oauth_error = payload.get("error") if isinstance(payload, dict) else None
            imsx = ImsxStatus.from_body(payload)
            details = [f"HTTP {status}"]
            if oauth_error:
                details.append(f"error={oauth_error}")
            if imsx:
                details.append(imsx.summary())
            hint = (
                "check token_scope: the SIS wants other or more scopes"
                if oauth_error == "invalid_scope"
                else "check the client id/secret and token URL"
            )
            raise AuthenticationError(
                "token request refused (" + "; ".join(details) + f"); {hint}",
                district_id=self._district_id,
                endpoint=TOKEN_ENDPOINT_LABEL,
                status=status,
                oauth_error=str(oauth_error) if oauth_error else None,
            )
        if payload is None:
            raise TransientFailure("token endpoint returned invalid JSON", status=status)
        if not isinstance(payload, dict) or not isinstance(payload.get("access_token"), str):
            raise AuthenticationError(
                f"token response (HTTP {status}) has no access_token",
                district_id=self._district_id,
                endpoint=TOKEN_ENDPOINT_LABEL,
                status=status,
            )
        token_type = str(payload.get("token_type", "bearer")).lower()
        if token_type != "bearer":
            raise AuthenticationError(
                f"token endpoint issued an unsupported token_type {token_type!r} (need bearer)",
                district_id=self._district_id,
                endpoint=TOKEN_ENDPOINT_LABEL,
                status=status,
            )
        expires_in = payload.get("expires_in")
        try:
            lifetime = float(expires_in) if expires_in is not None else None
        except (TypeError, ValueError):
            lifetime = None
        return payload["access_token"], lifetime


class BearerAuth(httpx.Auth):
    """httpx auth flow: attach the cached token; on a 401, renew once and resend once.

    (Twice only when the first replacement came from another thread's earlier renewal: concurrent
    page fetches can all hold tokens the SIS revoked together.)

    A second 401 is returned to the caller, which reports it as an AuthenticationError: looping would
    hammer the SIS with a credential it has revoked.
    """

    def __init__(self, tokens: TokenManager) -> None:
        self._tokens = tokens
        self._lock = threading.Lock()
        self.renewals_on_401 = 0

    def __repr__(self) -> str:
        return f"BearerAuth({self._tokens!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._tokens.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            with self._lock:
                self.renewals_on_401 += 1
            log.info(
                "district %s: API answered 401; renewing the access token once", self._tokens.district_id
            )
            token, fetched_now = self._tokens.replacement_for(token)
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if response.status_code == 401 and not fetched_now:
                # The replacement was another thread's renewal, issued before whatever revoked ours
                # (e.g. the SIS expiring every token at once): fetch one of our own, once more.
                token, _ = self._tokens.replacement_for(token)
                request.headers["Authorization"] = f"Bearer {token}"
                yield request
