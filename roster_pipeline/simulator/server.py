"""The simulator's HTTP server: stdlib ThreadingHTTPServer speaking HTTP/1.1 with keep-alive.

Why the stdlib server: it adds no dependency, a thread per connection matches how sync clients use
a SIS (a handful of keep-alive connections), and the expensive work (filter/sort) is cached in
views.IndexCache so a request costs one list slice plus one orjson render. For benchmarks the
server runs in its own process (testing.SimulatorProcess) so it does not share the client's GIL.
"""

from __future__ import annotations

import logging
import re
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from roster_pipeline.simulator import paging_faults
from roster_pipeline.simulator.auth import TokenStore
from roster_pipeline.simulator.district import SimulatedDistrict
from roster_pipeline.simulator.endpoints import (
    ADMIN_PREFIX,
    TOKEN_PATH,
    Request,
    dispatch,
)
from roster_pipeline.simulator.faults import PAGING_KINDS, FaultRule, Faults, strip_envelope
from roster_pipeline.simulator.oauth1 import DEFAULT_MAX_SKEW_SECONDS, SignatureVerifier
from roster_pipeline.simulator.responses import Response, imsx_error, json_response
from roster_pipeline.simulator.v1p2 import API_LAYOUTS, OneRosterVersion, error_body_v1p2
from roster_pipeline.simulator.views import IndexCache

log = logging.getLogger("roster_pipeline.simulator")

_SECRET_PARAMS = re.compile(
    r"((?:client_secret|access_token|token|password|oauth_signature)=)[^&]*", re.IGNORECASE
)

#: How API requests are authorised: an OAuth2 bearer token from the token endpoint (Infinite Campus
#: today), or a two-legged OAuth 1.0a HMAC-SHA256 signature on every request (no token endpoint).
AuthMode = Literal["oauth2", "oauth1"]
AUTH_MODES: tuple[str, ...] = ("oauth2", "oauth1")


def redact(query: str) -> str:
    """Query strings are logged and kept in the request log; credentials in them never are."""
    return _SECRET_PARAMS.sub(r"\1[REDACTED]", query)


@dataclass(frozen=True)
class Tenant:
    """One district served under its own Infinite Campus app name and client credentials."""

    app_name: str
    client_id: str
    client_secret: str
    district: SimulatedDistrict

    def __repr__(self) -> str:  # never show the secret in reprs, logs or test output
        return f"Tenant(app_name={self.app_name!r}, client_id={self.client_id!r}, district={self.district.name!r})"


@dataclass(frozen=True)
class RequestRecord:
    """One served request, for tests to assert client behaviour (retries, waits, re-auth)."""

    method: str
    path: str
    query: str  # redacted
    status: int  # 0 when the connection was reset without a response
    auth_ok: bool | None  # None for endpoints that take no credentials (token, admin)
    fault: str | None
    started: float  # time.monotonic() when the request line was read
    seconds: float


class SimulatorServer:
    """A multi-tenant OneRoster SIS on loopback; start()/stop() or use as a context manager.

    ``oneroster_version="1.2"`` serves the same districts in the 1.2 rostering binding, under 1.2 paths
    (``simulator.v1p2``); the default is 1.1.
    """

    def __init__(
        self,
        tenants: list[Tenant],
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0,
        max_page_size: int | None = None,
        token_ttl_seconds: int = 3600,
        request_log_size: int = 10_000,
        auth_mode: AuthMode = "oauth2",
        oauth1_max_skew_seconds: int = DEFAULT_MAX_SKEW_SECONDS,
        oneroster_version: OneRosterVersion = "1.1",
        required_scopes: frozenset[str] = frozenset(),
    ) -> None:
        if oneroster_version not in API_LAYOUTS:
            raise ValueError(
                f"oneroster_version must be one of {sorted(API_LAYOUTS)}, got {oneroster_version!r}"
            )
        self.oneroster_version: OneRosterVersion = oneroster_version
        self.api_prefix, self.api_suffix = API_LAYOUTS[oneroster_version]
        if not tenants:
            raise ValueError("a simulator needs at least one tenant")
        if auth_mode not in AUTH_MODES:
            raise ValueError(f"auth_mode must be one of {AUTH_MODES}, got {auth_mode!r}")
        self.tenants: dict[str, Tenant] = {}
        for tenant in tenants:
            if tenant.app_name in self.tenants:
                raise ValueError(f"duplicate app name {tenant.app_name!r}")
            self.tenants[tenant.app_name] = tenant
        self.host = host
        self.port = port
        self.latency_ms = latency_ms
        self.max_page_size = max_page_size
        # OAuth2 scopes a token request must ask for (empty: none required, as Infinite Campus).
        self.required_scopes = frozenset(required_scopes)
        self.auth_mode: AuthMode = auth_mode
        self.token_store = TokenStore(token_ttl_seconds)
        self.signatures = SignatureVerifier(oauth1_max_skew_seconds)  # used in auth_mode "oauth1" only
        self.faults = Faults()
        self.cache = IndexCache()
        self._requests: deque[RequestRecord] = deque(maxlen=request_log_size)
        self._requests_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------------------------- lifecycle

    def start(self) -> SimulatorServer:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="oneroster-simulator",
            daemon=True,
        )
        self._thread.start()
        log.info("OneRoster simulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_open_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -------------------------------------------------------------------------------- addresses

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the simulator is not running; call start() first")
        host = self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def token_url(self, app_name: str) -> str:
        self.tenant(app_name)
        return f"{self.url}{TOKEN_PATH}?appName={app_name}"

    def base_url(self, app_name: str) -> str:
        self.tenant(app_name)
        return f"{self.url}{self.api_prefix}{app_name}{self.api_suffix}"

    def tenant(self, app_name: str) -> Tenant:
        try:
            return self.tenants[app_name]
        except KeyError:
            raise KeyError(f"no tenant {app_name!r}; apps: {sorted(self.tenants)}") from None

    # -------------------------------------------------------------------------------- test hooks

    def expire_tokens(self) -> None:
        self.token_store.expire_all()

    def revoke_tokens(self) -> None:
        self.token_store.revoke_all()

    @property
    def requests(self) -> list[RequestRecord]:
        with self._requests_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    def _record(self, record: RequestRecord) -> None:
        with self._requests_lock:
            self._requests.append(record)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], sim: SimulatorServer
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.sim = sim
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def close_open_connections(self) -> None:
        """Idle keep-alive connections would otherwise keep handler threads (and clients) waiting."""
        with self.connections_lock:
            connections = list(self.open_connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


_SLASHES = re.compile(r"/{2,}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "RosterPipelineSimulator/1.0"
    timeout = 120  # idle keep-alive connections are dropped after this
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        # The stdlib logs the raw request line, which may carry credentials; we log our own line.
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _handle(self) -> None:
        sim = self.server.sim
        started = time.monotonic()
        split = urlsplit(self.path)
        path = _SLASHES.sub("/", split.path)
        if len(path) > 1:
            path = path.rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""

        # The admin endpoint is exempt from faults and latency: it is how tests clear them.
        is_admin = path.startswith(ADMIN_PREFIX)
        fault = None if is_admin else sim.faults.take(self.command, path, split.query)
        if fault is not None and fault.kind == "reset":
            self._log(sim, path, split.query, 0, None, fault, started)
            self._reset()
            return
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay_seconds)
        if sim.latency_ms and not is_admin:
            time.sleep(sim.latency_ms / 1000)

        if fault is not None and fault.kind == "status":
            response = _fault_response(fault)
        else:
            request = Request(
                method=self.command,
                path=path,
                params={k.strip(): v for k, v in parse_qsl(split.query, keep_blank_values=True)},
                raw_query=split.query,
                headers=self.headers,  # type: ignore[arg-type]  # HTTPMessage reads as a Mapping but is not declared one
                body=body,
                host=self.headers.get("Host") or f"{sim.host}:{sim.port}",
                client_ip=self.client_address[0],
                target=self.path,
            )
            try:
                response = dispatch(sim, request)
            except Exception:  # noqa: BLE001 - a bug must become a 500, not a dropped connection
                log.exception("simulator error serving %s %s", self.command, path)
                response = imsx_error(500, "internal_server_error", "simulator error")
            if fault is not None and fault.kind in PAGING_KINDS:
                response = paging_faults.apply(sim, fault, path, response)
        if sim.oneroster_version == "1.2" and response.status >= 400:
            response = error_body_v1p2(response)
        # Logged before the bytes go out: a client that has its answer must find the request in the log.
        self._log(sim, path, split.query, response.status, response.auth_ok, fault, started)
        self._send(response, fault)

    def _send(self, response: Response, fault: FaultRule | None) -> None:
        body = response.body
        if fault is not None and fault.kind == "no_envelope" and 200 <= response.status < 300:
            body = strip_envelope(body)
        declared = len(body)
        if fault is not None and fault.kind == "truncate":
            body = body[: len(body) // 2]
            declared = len(body)
        elif fault is not None and fault.kind == "incomplete":
            body = body[: len(body) // 2]
            self.close_connection = True
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(declared))
        for name, value in response.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    def _reset(self) -> None:
        """Drop the connection with a TCP RST and no bytes at all, like a crashed upstream."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _log(
        self,
        sim: SimulatorServer,
        path: str,
        query: str,
        status: int,
        auth_ok: bool | None,
        fault: FaultRule | None,
        started: float,
    ) -> None:
        seconds = time.monotonic() - started
        safe_query = redact(query)
        sim._record(
            RequestRecord(
                self.command,
                path,
                safe_query,
                status,
                auth_ok,
                fault.kind if fault else None,
                started,
                seconds,
            )
        )
        if log.isEnabledFor(logging.INFO):
            line = f"{path}?{safe_query}" if safe_query else path
            log.info(
                '%s "%s %s" %s %.1fms%s',
                self.client_address[0],
                self.command,
                line,
                status or "RESET",
                seconds * 1000,
                f" fault={fault.kind}" if fault else "",
            )


def _fault_response(fault: FaultRule) -> Response:
    status = fault.status or 500
    headers: list[tuple[str, str]] = []
    if fault.retry_after is not None:
        ra = fault.retry_after
        headers.append(("Retry-After", str(int(ra)) if float(ra).is_integer() else str(ra)))
    if status == 429:
        response = imsx_error(429, "server_busy", "too many requests (simulated)")
    elif status in (502, 503, 504):
        # What the load balancer in front of an SIS sends: HTML, not JSON.
        text = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[status]
        html = (
            f"<html><head><title>{status} {text}</title></head><body><h1>{status} {text}</h1></body></html>"
        )
        response = Response(status, html.encode(), content_type="text/html; charset=utf-8")
    elif status == 401:
        response = imsx_error(401, "unauthorisedrequest", "unauthorised (simulated)")
    elif status == 404:
        response = imsx_error(404, "unknownobject", "not found (simulated)")
    elif status >= 500:
        response = imsx_error(status, "internal_server_error", "server error (simulated)")
    elif status < 300:
        response = json_response(status, {})
    else:
        response = imsx_error(status, "invaliddata", "request refused (simulated)")
    response.headers.extend(headers)
    return response
