"""How to reach one district's OneRoster API, and how hard to push it.

A frozen pydantic model so a config can be shared between threads and logged safely: the client
secret is a ``SecretStr``, which prints as ``**********`` in repr, str and ``model_dump``.  Token and API
URLs must be https except on loopback (``secure_url``): the registry checks that on load, and this model
checks it again for any config built another way.

``auth_scheme`` picks how requests are authorised: ``oauth2`` (client credentials, a bearer token from
``token_url``) or ``oauth1`` (two-legged OAuth 1.0a, every request signed with HMAC-SHA256 using the
client id and secret as consumer key and secret; there is no token URL).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from roster_pipeline.oneroster.secure_url import require_secure_url

#: Statuses where the same request later may work: the server is busy (429), a proxy hiccupped
#: (502-504), or the SIS failed on its side (500). The client only sends GETs, which are idempotent, so
#: retrying a 500 is safe; it is bounded by max_retries, and a 500 that persists still fails the pull
#: (RetriesExhaustedError says after how many attempts). 501 and other 5xx name permanent conditions.
DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})


class ClientConfig(BaseModel):
    """Connection, paging and retry settings for one district."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    district_id: str = Field(min_length=1)
    base_url: str = Field(
        min_length=1, description="e.g. https://host/campus/api/oneroster/v1p1/APP/ims/oneroster/v1p1"
    )
    token_url: str | None = Field(
        default=None,
        min_length=1,
        description="e.g. https://host/campus/oauth2/token?appName=APP (oauth2 only)",
    )
    client_id: str = Field(min_length=1, description="OAuth2 client id, or the OAuth 1.0a consumer key")
    client_secret: SecretStr = Field(description="OAuth2 client secret, or the OAuth 1.0a consumer secret")
    auth_scheme: Literal["oauth2", "oauth1"] = "oauth2"
    token_auth: Literal["basic", "form"] = "basic"
    token_scope: str | None = Field(
        default=None,
        description="OAuth2 scope(s) to ask the token endpoint for, space-separated; some OneRoster 1.2 providers "
        "grant nothing without e.g. https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly",
    )
    page_size: int = Field(default=1000, ge=1, le=1_000_000)
    max_concurrency: int = Field(default=5, ge=1, le=64)
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=6, ge=0, description="retries after the first attempt, per request")
    backoff_base_seconds: float = Field(default=0.5, ge=0)
    backoff_max_seconds: float = Field(
        default=60.0, ge=0, description="cap on any single wait, Retry-After included"
    )
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    token_renew_margin_seconds: float = Field(
        default=60.0, ge=0, description="renew the token this long before expires_in runs out"
    )
    max_paging_restarts: int = Field(
        default=2, ge=0, description="how often a pull whose total shifted is re-read before giving up"
    )
    parse_ahead: int = Field(
        default=2,
        ge=1,
        description="pages the concurrent window may parse ahead of the one the consumer is waiting for; "
        "a parsed page is 3-4 times its body, so the rest of the window waits as raw bytes",
    )
    concurrent_paging: bool = Field(
        default=True,
        description="fetch pages in parallel when X-Total-Count is known; False forces Link/short-page paging",
    )
    sort_field: str | None = Field(default="sourcedId", description="stable order makes offset paging safe")
    oneroster_version: Literal["1.1", "1.2"] = Field(
        default="1.1",
        description="the SIS's OneRoster binding; 1.2 records are mapped onto the 1.1 shape (oneroster.v1p2)",
    )
    user_agent: str = "roster-pipeline OneRoster client"

    @field_validator("base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _secure_urls(self) -> ClientConfig:
        if self.auth_scheme == "oauth2" and self.token_url is None:
            # Not a ValueError: a ValidationError's text would quote the whole input, secret included.
            raise MissingTokenURLError(self.district_id)
        for field in ("token_url", "base_url"):
            url = getattr(self, field)
            if url is not None:
                require_secure_url(url, field, self.district_id)
        return self

    @model_validator(mode="after")
    def _base_url_matches_version(self) -> ClientConfig:
        """A 1.1 base URL with the 1.2 setting (or the reverse) would read every record in the wrong
        shape; the two bases end differently, so a mix-up is caught before any request."""
        path = self.base_url.split("?", 1)[0].rstrip("/")
        other = {"1.1": ("/ims/oneroster/rostering/v1p2", "1.2"), "1.2": ("/ims/oneroster/v1p1", "1.1")}
        suffix, version = other[self.oneroster_version]
        if path.endswith(suffix):
            expected = (
                "/ims/oneroster/v1p1" if self.oneroster_version == "1.1" else "/ims/oneroster/rostering/v1p2"
            )
            raise ValueError(
                f"district {self.district_id!r}: base_url ends in {suffix}, a OneRoster {version} API, but "
                f"oneroster_version is {self.oneroster_version} (its base ends in {expected}); set the other "
                "import method or the SIS's other base URL"
            )
        return self


class MissingTokenURLError(Exception):
    """An OAuth2 client configuration without a token URL; names the district."""

    def __init__(self, district_id: str) -> None:
        self.district_id = district_id
        super().__init__(
            f"district {district_id!r}: token_url is required with auth_scheme 'oauth2' "
            "(only OAuth 1.0a signing works without a token endpoint)"
        )
