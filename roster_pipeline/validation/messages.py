"""Human sentences for Rejects: each names the district, the resource, the record and the field.

They end up in the Dagster UI, the rejects table and the "Check Your Data" email, read by a district
admin who will go and fix the record in their SIS, so they say what was expected, not how we checked.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_VALUE = 200


def clip(value: str | None) -> str | None:
    """Reject values are truncated to 200 characters (the rejects table and emails stay readable)."""
    if value is None or len(value) <= MAX_VALUE:
        return value
    return value[: MAX_VALUE - 1] + "…"


def record_label(
    district_id: str, resource_name: str, sourced_id: str | None, position: int | None = None
) -> str:
    if sourced_id is None:
        where = f" #{position + 1} of the batch" if position is not None else ""
        return f"district {district_id!r}, {resource_name} record{where} without a sourcedId"
    return f"district {district_id!r}, {resource_name} {sourced_id!r}"


def _got(value: str | None) -> str:
    return "it is missing" if value is None else f"got {value!r}"


def explain(
    check: str, field: str, value: str | None, *, kind: str = "text", allowed: Sequence[str] = ()
) -> str:
    """What the field should have been, for one schema check."""
    if check == "required":
        if kind == "refs":
            return f"field {field!r} must list at least one reference with a sourcedId, {_got(value)}"
        if kind == "ref" and value is not None:
            return f"field {field!r} must be a reference with a sourcedId, got {value!r}"
        return f"field {field!r} is required but missing or empty"
    if check == "enum":
        return f"field {field!r} must be one of {', '.join(allowed)}, {_got(value)}"
    if check == "boolean_string":
        return f'field {field!r} must be "true" or "false", {_got(value)}'
    if check == "date_format":
        return f"field {field!r} must be a real date written YYYY-MM-DD, {_got(value)}"
    if check == "datetime_format":
        example = "2026-08-01T12:00:00.000Z"
        return f"field {field!r} must be a UTC ISO-8601 date-time such as {example}, {_got(value)}"
    if check == "school_year_format":
        return f"field {field!r} must be a 4-digit year such as 2027, {_got(value)}"
    if check == "email_format":
        return f"field {field!r} is not a valid email address, {_got(value)}"
    if check == "nul_character":
        return (
            f"field {field!r} contains a NUL character (shown as \\x00: '{value}'), which no warehouse "
            "can store; remove it in the SIS"
        )
    if check == "invalid_utf8":
        return (
            f"field {field!r} is not valid UTF-8 text (an undecodable byte is shown as \\xNN: '{value}'); "
            "correct the value's encoding in the SIS"
        )
    if check == "number_out_of_range":
        return f"field {field!r} holds a number too large to store ({value})"
    if check == "conflicting_duplicate":
        return (
            f"sourcedId {value!r} was served more than once with different content; every copy is held "
            "back, as which one is right cannot be told"
        )
    if check == "unique":
        return (
            f"sourcedId {value!r} appears more than once in the batch; every copy is held back, "
            "as which one is right cannot be told"
        )
    return f"field {field!r} fails check {check!r}, {_got(value)}"
