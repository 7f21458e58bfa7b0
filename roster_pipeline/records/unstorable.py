"""Values no warehouse can hold: finding them in a served record, and showing or storing them safely.

A SIS can serve text that Postgres refuses outright: a NUL character (``\\u0000``: text columns and
JSONB cannot contain it, and the COPY of a whole batch fails on it) or text that is not valid Unicode
(a byte that is not UTF-8, which the client decodes as a lone surrogate so that the rest of the page
survives, or a lone ``\\ud800`` escape).  A number too large for 64 bits (possible only from a body the
client had to parse leniently) cannot be serialised for the raw column either.

Such a value is a problem of one record, never of the district (GUIDE §6): validation quarantines the
record with the field named, and the quarantine stores the value and the raw record in a form that
shows what was wrong (``visible``) or that any database accepts (``storable``).  SQLite would accept
most of these, but both databases must behave alike, so the rules do not depend on the dialect.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

NUL_CHARACTER = "nul_character"
INVALID_UTF8 = "invalid_utf8"
NUMBER_OUT_OF_RANGE = "number_out_of_range"
CHECKS = (NUL_CHARACTER, INVALID_UTF8, NUMBER_OUT_OF_RANGE)

_NUL = "\x00"
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT64 = (-(2**63), 2**64 - 1)  # orjson serialises signed and unsigned 64-bit integers


def _show(match: re.Match[str]) -> str:
    char = match.group()
    if char == _NUL:
        return "\\x00"
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte the SIS actually sent
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def visible(text: str) -> str:
    """The text with NUL shown as ``\\x00``, an undecodable byte as ``\\xNN`` (the byte that was sent)
    and any other lone surrogate as ``\\udNNN``: storable everywhere, and telling the admin what to fix."""
    return _BAD_TEXT.sub(_show, text) if _BAD_TEXT.search(text) else text


def storable_text(text: str) -> str:
    """The text with NUL and lone surrogates replaced by U+FFFD (for values that must stay readable)."""
    return _BAD_TEXT.sub("\ufffd", text) if _BAD_TEXT.search(text) else text


def storable(value: Any) -> Any:
    """A copy of a JSON value every database can store: keys and strings made storable, integers beyond
    64 bits turned into their decimal text. Values that need nothing are returned as they are."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, Mapping):
        return {storable_text(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        return str(value)
    return value


def _text_problem(text: str) -> str | None:
    if _NUL in text:
        return NUL_CHARACTER
    if _SURROGATE.search(text):
        return INVALID_UTF8
    return None


def problems(value: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(field path, check, visible value) for every unstorable key or value in a record.

    Paths are written the way the validation names fields: ``givenName``, ``class.sourcedId``,
    ``orgs[0].sourcedId``. A bad key is reported under its own (visible) name.
    """
    if isinstance(value, str):
        check = _text_problem(value)
        if check is not None:
            yield path or "*", check, visible(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            name = str(key)
            child = f"{path}.{visible(name)}" if path else visible(name)
            key_check = _text_problem(name)
            if key_check is not None:
                yield child, key_check, visible(name)
            yield from problems(item, child)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from problems(item, f"{path}[{index}]")
    elif isinstance(value, int) and not isinstance(value, bool) and not _INT64[0] <= value <= _INT64[1]:
        yield path or "*", NUMBER_OUT_OF_RANGE, str(value)


def all_storable(records: list[dict[str, Any]]) -> bool:
    """True when every record of a batch can be stored as served: one orjson pass over the batch (it
    refuses lone surrogates and huge integers, and escapes NUL as ``\\u0000``), so the common clean batch
    costs no per-record Python work. A False only means "look at each record" (``problems``)."""
    try:
        dumped = orjson.dumps(records)
    except (orjson.JSONEncodeError, TypeError):
        return False
    return b"\\u0000" not in dumped
