"""A response body as JSON: strict and fast first, lenient when a byte is not UTF-8.

orjson refuses a whole body for one byte that is not UTF-8 (an SIS that writes one name in Latin-1),
and for a lone ``\\ud800`` escape.  Neither is a truncation, and re-reading does not help: the SIS
serves the same bytes every time.  So the body is decoded again with ``surrogateescape`` (each bad byte
becomes a lone surrogate that remembers it) and parsed by the standard library, which accepts such
text; the record holding it is then quarantined by validation (check ``invalid_utf8``, field named,
see ``roster_pipeline.records.unstorable``) and the rest of the page goes on.  Only a body that is not JSON
even then is a failure: truncated (transient, retried as before) or, when it also holds bytes that
are not UTF-8, corrupt (``CorruptBody``: the client reads it once more, then gives up).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from roster_pipeline.oneroster.retry import TransientFailure


@dataclass(frozen=True)
class Decoded:
    payload: Any
    invalid_utf8_offset: int | None = None  # first byte that is not UTF-8 when parsed leniently


class CorruptBody(Exception):
    """Bytes that are not UTF-8 and no JSON either: not a truncation, so not worth the retry budget."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_json(content: bytes) -> Decoded:
    """The body's JSON; raises TransientFailure (truncated or invalid JSON) or CorruptBody."""
    try:
        return Decoded(orjson.loads(content))
    except orjson.JSONDecodeError:
        pass
    offset: int | None = None
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut off at the very end is what a truncated body looks like.
        cut_at_end = exc.reason == "unexpected end of data" and exc.end == len(content)
        offset = None if cut_at_end else exc.start
        text = content.decode("utf-8", "surrogateescape")
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        if offset is not None:
            raise CorruptBody(
                f"the response body is not valid UTF-8 (byte offset {offset}: 0x{content[offset]:02x}) "
                "and not valid JSON"
            ) from None
        raise TransientFailure("invalid JSON in the response body (truncated?)") from None
    return Decoded(payload, offset)
