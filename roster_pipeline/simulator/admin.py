"""One entry point for mutations coming from outside Python (the loopback admin endpoint, the CLI).

JSON gives us untyped params, so they are checked here against each mutation's signature before the
call: a caller gets "remove_students: unknown parameter 'cout'" rather than a TypeError from deep inside.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from typing import Any

from . import mutations
from .district import SimulatedDistrict
from .mutations import MutationResult

MUTATIONS: dict[str, Callable[..., MutationResult]] = {
    "change_users": mutations.change_users,
    "add_students": mutations.add_students,
    "remove_students": mutations.remove_students,
    "move_students": mutations.move_students,
    "delete_school": mutations.delete_school,
    "wipe_enrollments": mutations.wipe_enrollments,
    "advance_school_year": mutations.advance_school_year,
}

DESCRIPTIONS: dict[str, str] = {
    "change_users": "edit one field of percent% of active users (params: percent, seed)",
    "add_students": "add count students with enrollments and demographics (params: count, seed, school_id)",
    "remove_students": "withdraw count students with their enrollments (params: count, seed, mode=tobedeleted|vanish)",
    "move_students": "move count students from one class to another (params: count, seed)",
    "delete_school": "take a school and all its data out (params: school_id, mode=vanish|tobedeleted)",
    "wipe_enrollments": "make percent% of all enrollments vanish, as a broken SIS would (params: percent, seed)",
    "advance_school_year": "roll over to the next school year (params: old=tobedeleted|gone, seed, leave_percent)",
}

# The JSON types each parameter accepts (``now`` arrives as an ISO-8601 string and is parsed).
_PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "percent": (int, float),
    "leave_percent": (int, float),
    "count": (int,),
    "seed": (int,),
    "mode": (str,),
    "old": (str,),
    "school_id": (str,),
    "now": (str,),
}


def apply_mutation(district: SimulatedDistrict, kind: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Validate ``params`` for mutation ``kind``, apply it, and return its JSON summary.

    Raises ValueError naming the mutation and the offending parameter for anything malformed.
    """
    arguments = mutation_arguments(kind, params)
    return MUTATIONS[kind](district, **arguments).summary()


def mutation_arguments(kind: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The keyword arguments for ``MUTATIONS[kind]`` from untyped (JSON) ``params``, checked and parsed.

    Separate from applying so a fault that will run a mutation later is refused when it is added.
    """
    if kind not in MUTATIONS:
        raise ValueError(f"unknown mutation {kind!r}; known: {', '.join(MUTATIONS)}")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise ValueError(f"{kind}: params must be a JSON object, got {type(params).__name__}")
    function = MUTATIONS[kind]
    accepted = {
        name: parameter
        for name, parameter in inspect.signature(function).parameters.items()
        if name != "district"
    }
    for name in params:
        if name not in accepted:
            raise ValueError(f"{kind}: unknown parameter {name!r}; accepted: {', '.join(accepted)}")
    for name, parameter in accepted.items():
        if parameter.default is inspect.Parameter.empty and name not in params:
            raise ValueError(f"{kind}: missing required parameter {name!r}")
    arguments: dict[str, Any] = {}
    for name, value in params.items():
        types = _PARAM_TYPES.get(name, (object,))
        if value is None and name == "school_id":
            arguments[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join(t.__name__ for t in types)
            raise ValueError(f"{kind}: parameter {name!r} must be {expected}, got {value!r}")
        if name == "now" and isinstance(value, str):  # a str: checked against _PARAM_TYPES above
            value = _parse_now(kind, value)
        arguments[name] = value
    return arguments


def _parse_now(kind: str, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{kind}: parameter 'now' must be an ISO-8601 datetime, got {value!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{kind}: parameter 'now' must carry a timezone (e.g. a trailing Z), got {value!r}")
    return moment
