"""Response values and the two error-body dialects a OneRoster SIS speaks (OAuth2 and imsx)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import orjson

JSON = "application/json; charset=utf-8"


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    auth_ok: bool | None = None  # None: endpoint needs no bearer token


def json_response(
    status: int,
    payload: object,
    *,
    headers: list[tuple[str, str]] | None = None,
    auth_ok: bool | None = None,
) -> Response:
    return Response(status, orjson.dumps(payload), headers=headers or [], auth_ok=auth_ok)


def imsx_error(
    status: int,
    code_minor: str,
    description: str,
    *,
    code_major: str = "failure",
    auth_ok: bool | None = None,
) -> Response:
    """The OneRoster 1.1 status-info body (imsx_StatusInfo.Type), returned as the whole error body."""
    body = {
        "imsx_codeMajor": code_major,
        "imsx_severity": "error",
        "imsx_messageRefIdentifier": uuid.uuid4().hex,
        "imsx_description": description,
        "imsx_CodeMinor": {
            "imsx_codeMinorField": [
                {"imsx_codeMinorFieldName": "TargetEndSystem", "imsx_codeMinorFieldValue": code_minor}
            ]
        },
    }
    return json_response(status, body, auth_ok=auth_ok)


def oauth_error(status: int, error: str, description: str) -> Response:
    """RFC 6749 §5.2 error body, with the no-store headers the RFC asks for."""
    headers = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
    if status == 401:
        headers.append(("WWW-Authenticate", 'Basic realm="campus"'))
    return json_response(status, {"error": error, "error_description": description}, headers=headers)


def not_found(path: str) -> Response:
    return imsx_error(404, "unknownobject", f"no such endpoint: {path}")
