"""``roster-pipeline simulator``: serve a synthetic district, or drive a running simulator.

    roster-pipeline simulator --size small --port 8000
    roster-pipeline simulator --size small --port 8000 --auth oauth1   # OAuth 1.0a signed requests
    roster-pipeline simulator mutate --url http://127.0.0.1:8000 --app demo change_users --param percent=5
    roster-pipeline simulator stats --url http://127.0.0.1:8000 --app demo

The client secret can come from ``--client-secret`` or the ROSTER_SIMULATOR_CLIENT_SECRET variable
(argv is visible to other users through ps); it is never printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

import httpx

from roster_pipeline.simulator.testing import DEFAULT_APP, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

SECRET_ENV = "ROSTER_SIMULATOR_CLIENT_SECRET"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument("--size", choices=("tiny", "small", "large"), default="tiny", help="district size")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (same seed, same district)")
    parser.add_argument(
        "--app-name", default=DEFAULT_APP, help=f"Infinite Campus app name (default {DEFAULT_APP})"
    )
    parser.add_argument(
        "--client-id", default=DEFAULT_CLIENT_ID, help=f"OAuth2 client id (default {DEFAULT_CLIENT_ID})"
    )
    parser.add_argument(
        "--client-secret",
        default=None,
        help=f"OAuth2 client secret (default: ${SECRET_ENV} or {DEFAULT_CLIENT_SECRET!r}); never printed",
    )
    parser.add_argument("--latency-ms", type=float, default=0, help="latency added to every request")
    parser.add_argument("--max-page-size", type=int, default=None, help="server-side cap on limit")
    parser.add_argument("--token-ttl", type=int, default=3600, help="access token lifetime in seconds")
    parser.add_argument(
        "--auth",
        choices=("oauth2", "oauth1"),
        default="oauth2",
        help="oauth2: bearer tokens from the token endpoint (default); oauth1: every API request must be signed "
        "with OAuth 1.0a HMAC-SHA256 (consumer key = client id, consumer secret = client secret; no token endpoint)",
    )
    parser.add_argument(
        "--oneroster-version",
        choices=("1.1", "1.2"),
        default="1.1",
        help="binding to serve: 1.1 (default) or 1.2 rostering (roles[] on users, the .../rostering/v1p2 base)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")

    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    from roster_pipeline.simulator.admin import DESCRIPTIONS

    mutate = sub.add_parser(
        "mutate",
        help="apply a district mutation on a running simulator",
        description="Apply a district mutation on a running simulator.",
        epilog=mutations_help(DESCRIPTIONS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mutate.add_argument(
        "kind", metavar="MUTATION", help="one of the mutations listed below, e.g. change_users"
    )
    mutate.add_argument("--url", required=True, help="the simulator's root URL, e.g. http://127.0.0.1:8000")
    mutate.add_argument("--app", default=DEFAULT_APP, help="app name of the district to mutate")
    mutate.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="mutation parameter (repeatable); VALUE is read as JSON when it parses, else as a string",
    )
    stats = sub.add_parser("stats", help="print record counts of a running simulator's district")
    stats.add_argument("--url", required=True)
    stats.add_argument("--app", default=DEFAULT_APP)


def mutations_help(descriptions: dict[str, str]) -> str:
    """The mutations ``simulator mutate`` knows, one a line with its parameters (shown by --help)."""
    width = max(len(name) for name in descriptions)
    lines = [f"  {name.ljust(width)}  {text}" for name, text in descriptions.items()]
    return "mutations (parameters go in --param KEY=VALUE):\n" + "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.action == "mutate":
        return _mutate(args)
    if args.action == "stats":
        return _stats(args)
    return _serve(args)


def _param_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _mutate(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"--param needs KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        params[key.strip()] = _param_value(value)
    url = f"{args.url.rstrip('/')}/_simulator/{args.app}/mutations"
    response = httpx.post(url, json={"kind": args.kind, "params": params}, timeout=600)
    print(json.dumps(response.json(), indent=2, sort_keys=True))
    return 0 if response.status_code == 200 else 1


def _stats(args: argparse.Namespace) -> int:
    response = httpx.get(f"{args.url.rstrip('/')}/_simulator/{args.app}/stats", timeout=60)
    print(json.dumps(response.json(), indent=2, sort_keys=True))
    return 0 if response.status_code == 200 else 1


def _serve(args: argparse.Namespace) -> int:
    from roster_pipeline.simulator.generate import generate_district
    from roster_pipeline.simulator.server import SimulatorServer, Tenant

    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    secret = args.client_secret or os.environ.get(SECRET_ENV) or DEFAULT_CLIENT_SECRET

    started = time.monotonic()
    district = generate_district(args.size, args.seed)
    generated = time.monotonic() - started
    server = SimulatorServer(
        [Tenant(args.app_name, args.client_id, secret, district)],
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        max_page_size=args.max_page_size,
        token_ttl_seconds=args.token_ttl,
        auth_mode=args.auth,
        oneroster_version=args.oneroster_version,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    counts = ", ".join(f"{n} {name}" for name, n in ((k, len(v)) for k, v in district.collections.items()))
    print(
        f"OneRoster {args.oneroster_version} simulator: {args.size} district (seed {args.seed}) generated in {generated:.1f}s: {counts}"
    )
    if args.auth == "oauth1":
        print("  auth:         OAuth 1.0a, HMAC-SHA256 signature on every request (no token endpoint)")
    else:
        print(f"  token URL:    {server.token_url(args.app_name)}")
    print(f"  API base URL: {server.base_url(args.app_name)}")
    print(f"  client id:    {args.client_id}   (client secret not shown)")
    print(f"  admin:        {server.url}/_simulator/{args.app_name}/stats")
    print("ready", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0
