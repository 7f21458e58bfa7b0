"""The interface between an import method and the sync steps.

It is what ``OneRosterClient`` already offered the sync before there were several import methods, so the
REST client is a ``RosterSource`` as it is; the other methods implement the same few calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, Literal, Protocol, runtime_checkable

#: How a district delivers its roster (the registry's ``import_method``):
#: ``oneroster_rest`` — OneRoster 1.1 REST, OAuth2 client credentials (the default; Infinite Campus since 2023);
#: ``oneroster_rest_oauth1`` — OneRoster 1.1 REST signed with OAuth 1.0a HMAC-SHA256 (older SIS setups);
#: ``oneroster_v1p2_rest`` — OneRoster 1.2 rostering REST, OAuth2 client credentials;
#: ``csv_bundle`` — a OneRoster 1.1 CSV zip from a path or a drop folder (districts exporting to SFTP).
ImportMethod = Literal["oneroster_rest", "oneroster_rest_oauth1", "oneroster_v1p2_rest", "csv_bundle"]
IMPORT_METHODS: tuple[str, ...] = (
    "oneroster_rest",
    "oneroster_rest_oauth1",
    "oneroster_v1p2_rest",
    "csv_bundle",
)


@runtime_checkable
class RosterSource(Protocol):
    """One district's roster, read collection by collection.

    ``iter_batches`` yields lists of OneRoster 1.1 shaped record dicts (a list subclass may carry
    ``issues``: conflicting copies of one sourcedId, which the sync quarantines). ``stats_for`` returns
    the collection's fetch figures after its pull (``FetchStats``: records, pages, requests, retries,
    duplicates). ``current_school_year`` is the ending year of the SIS's current schoolYear session, or
    None when it serves none.
    """

    def __enter__(self) -> RosterSource: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def iter_batches(self, name: str, since: datetime | None = None) -> Iterator[list[dict[str, Any]]]: ...

    def stats_for(self, name: str) -> Any: ...

    def current_school_year(self, today: date | None = None) -> int | None: ...
