"""The paging faults: an answered list page whose count lies, whose records are short, or after which
the district changes.

They act on the response the simulator already built (server.py calls ``apply`` after dispatch), so
everything else about the page (status, Link header, the other records) stays exactly as the real
endpoint served it. Only a 200 whose body is a OneRoster envelope (one list of records) is changed
by ``total_count`` and ``drop``; ``mutate`` runs whatever the request's answer was, because "the
district changed between two requests" does not depend on the first one succeeding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from roster_pipeline.simulator.admin import MUTATIONS, mutation_arguments
from roster_pipeline.simulator.faults import FaultRule
from roster_pipeline.simulator.responses import Response

if TYPE_CHECKING:
    from roster_pipeline.simulator.server import SimulatorServer


def apply(server: SimulatorServer, rule: FaultRule, path: str, response: Response) -> Response:
    """``response`` as the fault ``rule`` changes it (a new Response; the given one is not modified)."""
    if rule.kind == "total_count":
        return _with_total(rule, response)
    if rule.kind == "drop":
        return _without_records(rule, response)
    if rule.kind == "mutate":
        _mutate(server, rule, path)
    return response


def _with_total(rule: FaultRule, response: Response) -> Response:
    headers = list(response.headers)
    for index, (name, value) in enumerate(headers):
        if name.lower() == "x-total-count" and response.status == 200:
            true_total = int(value)
            lie = rule.total if rule.total is not None else true_total + rule.total_delta
            headers[index] = (name, str(max(0, lie)))
    return Response(response.status, response.body, response.content_type, headers, response.auth_ok)


def _without_records(rule: FaultRule, response: Response) -> Response:
    if response.status != 200:
        return response
    payload = orjson.loads(response.body)
    lists = (
        [key for key, value in payload.items() if isinstance(value, list)]
        if isinstance(payload, dict)
        else []
    )
    if len(lists) != 1:
        return response
    records = payload[lists[0]]
    # From the middle: a record missing inside a page is what shifting rows (or a flaky SIS) produce,
    # and unlike a missing last record it cannot be mistaken for the end of the collection.
    start = max(0, (len(records) - rule.count) // 2)
    del records[start : start + rule.count]
    return Response(
        response.status,
        orjson.dumps(payload),
        response.content_type,
        list(response.headers),
        response.auth_ok,
    )


def _mutate(server: SimulatorServer, rule: FaultRule, path: str) -> None:
    prefix = server.api_prefix
    app_name = path[len(prefix) :].partition("/")[0] if path.startswith(prefix) else ""
    tenant = server.tenants.get(app_name)
    if tenant is None or rule.mutation is None:
        return
    arguments = mutation_arguments(rule.mutation, rule.mutation_params)
    rule.results.append(MUTATIONS[rule.mutation](tenant.district, **arguments))
