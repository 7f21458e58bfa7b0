"""OneRoster REST client: OAuth2 client credentials or OAuth 1.0a signing, safe offset paging, retries,
delta reads; 1.1, and 1.2 rostering mapped onto the 1.1 shape (``v1p2``).

Everything other modules need is importable from here; the submodules are implementation detail.
"""

from roster_pipeline.oneroster.client import OneRosterClient
from roster_pipeline.oneroster.config import ClientConfig
from roster_pipeline.oneroster.errors import (
    AuthenticationError,
    EnvelopeError,
    ImsxStatus,
    OneRosterError,
    OneRosterHTTPError,
    PagingInconsistentError,
    RetriesExhaustedError,
)
from roster_pipeline.oneroster.paging import filter_predicate, quote_filter_value
from roster_pipeline.oneroster.stats import FetchStats

__all__ = [
    "AuthenticationError",
    "ClientConfig",
    "EnvelopeError",
    "FetchStats",
    "ImsxStatus",
    "OneRosterClient",
    "OneRosterError",
    "OneRosterHTTPError",
    "PagingInconsistentError",
    "RetriesExhaustedError",
    "filter_predicate",
    "quote_filter_value",
]
