"""The simulator's endpoints as plain functions from a parsed request to a Response.

Kept apart from the HTTP plumbing in server.py so the OneRoster behaviour reads top to bottom
without socket handling in the way.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import orjson

from roster_pipeline.simulator import v1p2
from roster_pipeline.simulator.auth import TokenState, basic_credentials, bearer_token, secrets_equal
from roster_pipeline.simulator.faults import DATA_SETTINGS, KINDS, PAGING_SETTINGS, finish_body
from roster_pipeline.simulator.query import Query, QueryError, parse_query, project
from roster_pipeline.simulator.responses import Response, imsx_error, json_response, not_found, oauth_error
from roster_pipeline.simulator.views import COLLECTIONS, EMPTY_COLLECTIONS, Listing, empty, nested, top_level

if TYPE_CHECKING:
    from roster_pipeline.simulator.server import SimulatorServer, Tenant

TOKEN_PATH = "/campus/oauth2/token"
API_PREFIX, API_SUFFIX = v1p2.API_LAYOUTS["1.1"]  # the 1.1 layout; a 1.2 server uses API_LAYOUTS["1.2"]
ADMIN_PREFIX = "/_simulator/"


@dataclass
class Request:
    method: str
    path: str  # normalised: no repeated or trailing slashes
    params: dict[str, str]  # query parameters, names whitespace-stripped, last value wins
    raw_query: str
    headers: Mapping[str, str]
    body: bytes
    host: str  # Host header (or the server's own), used to make hrefs absolute
    client_ip: str
    target: str = ""  # the request target exactly as received (raw path and query): what OAuth 1.0a signs


def dispatch(server: SimulatorServer, request: Request) -> Response:
    path = request.path
    if path == TOKEN_PATH:
        return token_endpoint(server, request)
    if path.startswith(server.api_prefix):
        return api_endpoint(server, request)
    if path.startswith(ADMIN_PREFIX):
        return admin_endpoint(server, request)
    return not_found(path)


# ------------------------------------------------------------------------------------------ OAuth2


def token_endpoint(server: SimulatorServer, request: Request) -> Response:
    if server.auth_mode == "oauth1":
        # An SIS that signs with OAuth 1.0a has no token endpoint: a client asking for a token is misconfigured.
        return imsx_error(
            404, "unknownobject", "no token endpoint: this SIS authorises requests by OAuth 1.0a signatures"
        )
    if request.method != "POST":
        return oauth_error(405, "invalid_request", "use POST")
    app_name = request.params.get("appName", "").strip()
    if not app_name:
        return oauth_error(400, "invalid_request", "No Campus Application selected")
    tenant = server.tenants.get(app_name)
    if tenant is None:
        return oauth_error(400, "invalid_request", f"Unknown Campus Application: {app_name}")

    form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
    grant_type = form.get("grant_type", "")
    if not grant_type:
        return oauth_error(400, "invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        return oauth_error(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    creds = basic_credentials(request.headers.get("Authorization"))
    if creds is None and "client_id" in form:
        creds = (form.get("client_id", ""), form.get("client_secret", ""))
    if creds is None:
        return oauth_error(401, "invalid_client", "client authentication required (HTTP Basic or form body)")
    client_id, client_secret = creds
    if not (
        secrets_equal(client_id, tenant.client_id) and secrets_equal(client_secret, tenant.client_secret)
    ):
        return oauth_error(401, "invalid_client", "client authentication failed")

    asked = frozenset(form.get("scope", "").split())
    if not server.required_scopes <= asked:  # a provider that grants nothing without its scopes
        missing = " ".join(sorted(server.required_scopes - asked))
        return oauth_error(400, "invalid_scope", f"this application must ask for the scope(s): {missing}")

    token, ttl = server.token_store.issue(app_name)
    granted = {"scope": " ".join(sorted(asked))} if asked else {}
    return json_response(
        200,
        {"access_token": token, "token_type": "Bearer", "expires_in": ttl, **granted},
        headers=[("Cache-Control", "no-store"), ("Pragma", "no-cache")],
    )


# ------------------------------------------------------------------------------------------ OneRoster

_TOKEN_PROBLEMS = {
    TokenState.MISSING: "no bearer token",
    TokenState.UNKNOWN: "unknown or revoked access token",
    TokenState.EXPIRED: "access token expired",
    TokenState.OTHER_APP: "access token was issued for another application",
}


def api_endpoint(server: SimulatorServer, request: Request) -> Response:
    prefix, suffix = server.api_prefix, server.api_suffix
    rest = request.path[len(prefix) :]
    app_name, _, tail = rest.partition("/")
    tenant = server.tenants.get(app_name)
    if tenant is None or not ("/" + tail).startswith(suffix):
        return not_found(request.path)
    resource_path = ("/" + tail)[len(suffix) :].strip("/")

    refused = _refusal(server, tenant, app_name, request)
    if refused is not None:
        return refused
    if request.method not in ("GET", "HEAD"):
        return imsx_error(
            405, "unsupportedoperation", "the simulator is read-only", code_major="unsupported", auth_ok=True
        )

    segments = resource_path.split("/") if resource_path else []
    api_base = f"http://{request.host}{prefix}{app_name}{suffix}"
    response = _read(server, tenant.district, segments, request, api_base)
    response.auth_ok = True
    return response


def _refusal(server: SimulatorServer, tenant: Tenant, app_name: str, request: Request) -> Response | None:
    """The 401 for a request the tenant's credentials do not authorise (bearer token or OAuth 1.0a), else None."""
    if server.auth_mode == "oauth1":
        problem = server.signatures.refusal(
            app_name,
            tenant.client_id,
            tenant.client_secret,
            request.method,
            f"http://{request.host}{request.target or request.path}",
            request.headers,
        )
        if problem is None:
            return None
        response = imsx_error(401, "unauthorisedrequest", problem, auth_ok=False)
        response.headers.append(("WWW-Authenticate", f'OAuth realm="{app_name}"'))
        return response
    state = server.token_store.check(bearer_token(request.headers.get("Authorization")), app_name)
    if state is TokenState.VALID:
        return None
    response = imsx_error(401, "unauthorisedrequest", _TOKEN_PROBLEMS[state], auth_ok=False)
    response.headers.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))
    return response


def _read(
    server: SimulatorServer, district: Any, segments: list[str], request: Request, api_base: str
) -> Response:
    n = len(segments)
    # 1.2 puts gradebook and resources under bases of their own: the rostering base does not serve them.
    gradebook = server.oneroster_version == "1.1"
    if n == 1:
        name = segments[0]
        if name in COLLECTIONS:
            return _list(server, district, top_level(name), request, api_base)
        if name in EMPTY_COLLECTIONS and gradebook:
            return _list(server, district, empty(name), request, api_base)
    elif n == 2:
        name, sourced_id = segments
        if name in COLLECTIONS:
            return _single(server, district, name, sourced_id, request, api_base)
        if name in EMPTY_COLLECTIONS and gradebook:
            return imsx_error(404, "unknownobject", f"{name} {sourced_id!r} not found")
    elif n >= 3:
        listing = nested(segments)
        if listing is not None and (gradebook or listing.shape.base not in EMPTY_COLLECTIONS):
            return _list(server, district, listing, request, api_base)
    return not_found(request.path)


def _parse_query(
    server: SimulatorServer, params: Mapping[str, str], base: str, max_page_size: int | None
) -> Query:
    """The request's query; in 1.2 mode ``fields`` names 1.2 fields (filter and sort work on the stored
    records, whose shared fields are the same in both versions)."""
    if server.oneroster_version == "1.1":
        return parse_query(params, base, max_page_size=max_page_size)
    query = parse_query({k: v for k, v in params.items() if k != "fields"}, base, max_page_size=max_page_size)
    raw_fields = params.get("fields")
    if raw_fields is None:
        return query
    names = tuple(f.strip() for f in raw_fields.split(","))
    if not any(names):
        raise QueryError("invalid_selection_field", "fields is blank")
    known = v1p2.FIELDS.get(base, frozenset())
    for name in names:
        if name not in known:
            raise QueryError("invalid_selection_field", f"unknown selection field {name!r} for {base}")
    return dataclasses.replace(query, fields=names)


def _render(server: SimulatorServer, district: Any, base: str, records: list[Any]) -> list[Any]:
    """Stored records as this server's OneRoster version serves them (1.1: as they are)."""
    if server.oneroster_version == "1.1":
        return records
    return v1p2.render_page(base, records, district.collections["orgs"])


def _absolute(body: bytes, api_base: str) -> bytes:
    # References are stored with hrefs relative to the API base; one pass over the rendered page
    # makes them absolute, so the cost stays O(page) and the stored records stay host-independent.
    return body.replace(b'"href":"/', b'"href":"' + api_base.encode() + b"/")


def _list(
    server: SimulatorServer, district: Any, listing: Listing, request: Request, api_base: str
) -> Response:
    try:
        query = _parse_query(server, request.params, listing.shape.base, server.max_page_size)
    except QueryError as exc:
        return imsx_error(400, exc.code_minor, exc.description)
    records = server.cache.records(district, listing, query)
    records = server.faults.rewrite_listing(request.method, request.path, records)  # data faults
    total = len(records)
    page = _render(server, district, listing.shape.base, records[query.offset : query.offset + query.limit])
    page = project(page, query.fields)
    page, patch = server.faults.corrupt_page(request.method, request.path, page)
    body = _absolute(orjson.dumps({listing.shape.envelope: page}), api_base)
    if patch:
        body = finish_body(body)
    headers = [("X-Total-Count", str(total))]
    links = _links(request, total, query.offset, query.limit)
    if links:
        headers.append(("Link", links))
    return Response(200, body, headers=headers)


def _links(request: Request, total: int, offset: int, limit: int) -> str:
    """RFC 8288 Link header: first/prev/next/last pages, with every other parameter kept as sent."""
    base_params = [
        (k, v)
        for k, v in parse_qsl(request.raw_query, keep_blank_values=True)
        if k.strip() not in ("offset", "limit")
    ]
    url = f"http://{request.host}{request.path}"

    def link(rel: str, at: int) -> str:
        query = urlencode(base_params + [("limit", str(limit)), ("offset", str(at))])
        return f'<{url}?{query}>; rel="{rel}"'

    last = max(0, (total - 1) // limit * limit) if total else 0
    parts = [link("first", 0)]
    if offset > 0:
        parts.append(link("prev", max(0, min(offset - limit, last))))
    if offset + limit < total:
        parts.append(link("next", offset + limit))
    parts.append(link("last", last))
    return ", ".join(parts)


def _single(
    server: SimulatorServer, district: Any, name: str, sourced_id: str, request: Request, api_base: str
) -> Response:
    shape = COLLECTIONS[name]
    try:
        query = _parse_query(
            server, {k: v for k, v in request.params.items() if k == "fields"}, shape.base, None
        )
    except QueryError as exc:
        return imsx_error(400, exc.code_minor, exc.description)
    record = district.collections[shape.base].get(sourced_id)
    if record is None or not shape.admits(record):
        return imsx_error(404, "unknownobject", f"{name} {sourced_id!r} not found")
    (projected,) = project(_render(server, district, shape.base, [record]), query.fields)
    body = _absolute(orjson.dumps({shape.singular: projected}), api_base)
    # X-Total-Count on a single read is not required by 1.1 but SDS's collection checks for it.
    return Response(200, body, headers=[("X-Total-Count", "1")])


# ------------------------------------------------------------------------------------------ admin


def admin_endpoint(server: SimulatorServer, request: Request) -> Response:
    """Loopback-only controls: mutations, stats, faults, token expiry. Not part of OneRoster."""
    if request.client_ip not in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        return json_response(403, {"error": "the admin endpoint only answers loopback clients"})
    parts = request.path[len(ADMIN_PREFIX) :].split("/")
    try:
        payload = orjson.loads(request.body) if request.body.strip() else {}
    except orjson.JSONDecodeError as exc:
        return json_response(400, {"error": f"body is not JSON: {exc}"})
    if not isinstance(payload, dict):
        return json_response(400, {"error": "body must be a JSON object"})

    if parts == ["faults"]:
        if request.method == "GET":
            return json_response(200, {"faults": [r.to_dict() for r in server.faults.rules]})
        if request.method == "DELETE":
            server.faults.clear()
            return json_response(200, {"faults": []})
        if request.method == "POST":
            allowed = {
                "status",
                "kind",
                "retry_after",
                "times",
                "after",
                "path_contains",
                "method",
                "delay_seconds",
            }
            allowed |= PAGING_SETTINGS | DATA_SETTINGS
            unknown = set(payload) - allowed
            if unknown:
                return json_response(
                    400, {"error": f"unknown fault settings {sorted(unknown)}; kinds: {KINDS}"}
                )
            try:
                rule = server.faults.add(**payload)
            except (TypeError, ValueError) as exc:
                return json_response(400, {"error": str(exc)})
            return json_response(200, rule.to_dict())
    if parts == ["tokens", "expire"] and request.method == "POST":
        server.expire_tokens()
        return json_response(200, {"tokens": "expired"})
    if parts == ["tokens", "revoke"] and request.method == "POST":
        server.revoke_tokens()
        return json_response(200, {"tokens": "revoked"})

    if len(parts) == 2:
        app_name, action = parts
        tenant = server.tenants.get(app_name)
        if tenant is None:
            return json_response(404, {"error": f"unknown app {app_name!r}", "apps": sorted(server.tenants)})
        if action == "stats" and request.method == "GET":
            return json_response(200, stats(tenant.district, app_name))
        if action == "mutations" and request.method == "POST":
            return _mutate(tenant.district, payload)
    return json_response(404, {"error": f"no admin endpoint {request.method} {request.path}"})


def _mutate(district: Any, payload: dict[str, Any]) -> Response:
    kind = payload.get("kind")
    params = payload.get("params") or {}
    if not isinstance(kind, str) or not isinstance(params, dict):
        return json_response(400, {"error": 'body must be {"kind": "<mutation>", "params": {...}}'})
    admin = importlib.import_module("roster_pipeline.simulator.admin")
    known = getattr(admin, "MUTATIONS", {})
    if known and kind not in known:
        return json_response(400, {"error": f"unknown mutation {kind!r}", "mutations": sorted(known)})
    try:
        summary = admin.apply_mutation(district, kind, params)
    except (KeyError, ValueError, TypeError) as exc:
        return json_response(400, {"error": f"{type(exc).__name__}: {exc}"})
    return json_response(200, summary)


def stats(district: Any, app_name: str) -> dict[str, Any]:
    with district.lock:
        counts = {name: len(records) for name, records in district.collections.items()}
        derived = {
            name: sum(1 for r in district.collections[shape.base].values() if shape.admits(r))
            for name, shape in COLLECTIONS.items()
            if shape.where is not None
        }
        return {
            "app": app_name,
            "district": district.name,
            "size": district.size,
            "seed": district.seed,
            "school_year": district.school_year,
            "version": district.version,
            "counts": counts,
            "derived": derived,
        }
