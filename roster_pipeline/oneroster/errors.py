"""The client's exceptions: one base class, one subclass per way a pull can go wrong.

Every message names the district and the endpoint because these errors end up in Dagster run logs and
"Check Your Data" emails that cover many districts at once; an error without its district is useless
to the person on call. Messages are built only from values we chose to put there (status, imsx codes,
counts), never from request headers or credentials, so no secret can leak through ``str()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class OneRosterError(Exception):
    """Base class: catch this to handle any failure of a OneRoster pull."""

    def __init__(self, message: str, *, district_id: str, endpoint: str) -> None:
        self.district_id = district_id
        self.endpoint = endpoint
        self.detail = message
        super().__init__(f"district {district_id!r}, endpoint {endpoint!r}: {message}")


class AuthenticationError(OneRosterError):
    """The token endpoint refused our credentials, the API kept refusing a fresh token, or (OAuth 1.0a)
    the API refused our request signature."""

    def __init__(
        self,
        message: str,
        *,
        district_id: str,
        endpoint: str,
        status: int | None = None,
        oauth_error: str | None = None,
    ) -> None:
        self.status = status
        self.oauth_error = oauth_error
        super().__init__(message, district_id=district_id, endpoint=endpoint)


@dataclass(frozen=True)
class ImsxStatus:
    """The imsx_StatusInfo block OneRoster servers put in error bodies."""

    code_major: str | None = None
    severity: str | None = None
    code_minor: str | None = None
    description: str | None = None

    @classmethod
    def from_body(cls, body: Any) -> ImsxStatus | None:
        """Parse the shapes seen in the wild: the 1.1 ``statusInfoSet`` list, a bare object, or flat keys.

        Returns None when the body carries no imsx fields at all (e.g. a proxy's HTML error page).
        """
        if not isinstance(body, dict):
            return None
        candidate: Any = body
        for key in ("imsx_statusInfoSet", "statusInfoSet", "imsx_StatusInfo", "statusInfo"):
            if key in body:
                candidate = body[key]
                break
        if isinstance(candidate, dict) and "imsx_statusInfo" in candidate:
            candidate = candidate["imsx_statusInfo"]
        if isinstance(candidate, list):
            candidate = candidate[0] if candidate else {}
        if not isinstance(candidate, dict):
            return None
        minor = candidate.get("imsx_CodeMinor")
        if isinstance(minor, dict):
            # 1.1 nests it: {"imsx_codeMinorField": [{"imsx_codeMinorFieldName": ..., "imsx_codeMinorFieldValue": ...}]}
            fields = minor.get("imsx_codeMinorField") or []
            if isinstance(fields, dict):
                fields = [fields]
            values = [f.get("imsx_codeMinorFieldValue") for f in fields if isinstance(f, dict)]
            minor = ",".join(str(v) for v in values if v) or None
        status = cls(
            code_major=_str_or_none(candidate.get("imsx_codeMajor")),
            severity=_str_or_none(candidate.get("imsx_severity")),
            code_minor=_str_or_none(minor),
            description=_str_or_none(candidate.get("imsx_description")),
        )
        if status == cls():
            return None
        return status

    def summary(self) -> str:
        parts = [
            f"codeMajor={self.code_major}" if self.code_major else "",
            f"severity={self.severity}" if self.severity else "",
            f"CodeMinor={self.code_minor}" if self.code_minor else "",
            f"description={self.description!r}" if self.description else "",
        ]
        return ", ".join(p for p in parts if p)


def _str_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


class OneRosterHTTPError(OneRosterError):
    """The API answered with an error status that retrying will not fix (or that we stopped retrying)."""

    def __init__(
        self,
        message: str,
        *,
        district_id: str,
        endpoint: str,
        status: int,
        imsx: ImsxStatus | None = None,
    ) -> None:
        self.status = status
        self.imsx = imsx
        super().__init__(message, district_id=district_id, endpoint=endpoint)

    @property
    def code_major(self) -> str | None:
        return self.imsx.code_major if self.imsx else None

    @property
    def severity(self) -> str | None:
        return self.imsx.severity if self.imsx else None

    @property
    def code_minor(self) -> str | None:
        return self.imsx.code_minor if self.imsx else None

    @property
    def description(self) -> str | None:
        return self.imsx.description if self.imsx else None


class EnvelopeError(OneRosterError):
    """A 2xx response whose body is not the OneRoster envelope we asked for.

    Treating a missing envelope key as "no records" would turn a server hiccup into mass deletions
    downstream, so it is always an error.
    """

    def __init__(self, message: str, *, district_id: str, endpoint: str, field: str) -> None:
        self.field = field
        super().__init__(message, district_id=district_id, endpoint=endpoint)


class PagingInconsistentError(OneRosterError):
    """The collection kept changing under us, so the pull cannot be proven complete."""

    def __init__(
        self,
        message: str,
        *,
        district_id: str,
        endpoint: str,
        expected_total: int | None = None,
        observed_total: int | None = None,
    ) -> None:
        self.expected_total = expected_total
        self.observed_total = observed_total
        super().__init__(message, district_id=district_id, endpoint=endpoint)


class RetriesExhaustedError(OneRosterError):
    """A transient failure (429, 5xx, reset, timeout, broken JSON) outlasted our retry budget."""

    def __init__(
        self,
        message: str,
        *,
        district_id: str,
        endpoint: str,
        attempts: int,
        last_failure: str,
        status: int | None = None,
    ) -> None:
        self.attempts = attempts
        self.last_failure = last_failure
        self.status = status
        super().__init__(message, district_id=district_id, endpoint=endpoint)
