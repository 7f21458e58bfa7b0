"""Token and API URLs: https only (loopback excepted), checked at registry load and again in the client
config; redirects are never followed, so a bearer token or the client secret never leaves the configured URL;
TLS certificates are verified (a private CA is trusted through SSL_CERT_FILE, never by turning checks off)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from roster_pipeline.oneroster import ClientConfig, OneRosterClient, OneRosterError
from roster_pipeline.oneroster.secure_url import InsecureURLError, is_loopback_host
from roster_pipeline.oneroster.tls import verifying_context
from roster_pipeline.registry.districts import RegistryError, parse_registry
from roster_pipeline.simulator import SimulatorServer, running_simulator
from roster_pipeline.sources.factory import client_config_for
from roster_pipeline_tests.paths import PROJECT_ROOT

from .smtp_server import make_self_signed_cert

SECRET = "Zx9-very-secret-value-Q7"


def district(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "springfield",
        "name": "Springfield",
        "app_name": "springfield",
        "client_id_env": "SPRINGFIELD_ID",
        "client_secret_env": "SPRINGFIELD_SECRET",
    }
    base.update(fields)
    return base


def registry_error(**fields: Any) -> str:
    with pytest.raises(RegistryError) as info:
        parse_registry({"districts": [district(**fields)]})
    return str(info.value)


# --- registry load -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (
            {
                "sis": "classlink",
                "token_url": "http://sis.example.org/token",
                "base_url": "https://sis.example.org/v1p1",
            },
            "token_url",
        ),
        (
            {
                "sis": "classlink",
                "token_url": "https://sis.example.org/token",
                "base_url": "http://sis.example.org/v1p1",
            },
            "base_url",
        ),
        ({"api_host": "http://springfield.infinitecampus.org"}, "api_host"),
        # looks like loopback, is not: a DNS name under the attacker's control
        ({"api_host": "http://127.0.0.1.nip.example"}, "api_host"),
        ({"api_host": "http://localhost.example.org:8000"}, "api_host"),
        ({"api_host": "sis.example.org", "token_url": "http://10.0.0.5/campus/oauth2/token"}, "token_url"),
        ({"api_host": "sis.example.org", "base_url": "http://192.168.1.20/ims/oneroster/v1p1"}, "base_url"),
        ({"api_host": "ftp://sis.example.org"}, "api_host"),
    ],
)
def test_plain_http_to_a_network_host_is_refused_naming_district_and_field(
    fields: dict[str, Any], field: str
) -> None:
    message = registry_error(**fields)
    assert f"district 'springfield': field {field!r}:" in message
    assert "https" in message


def test_credentials_in_a_url_are_refused_without_echoing_them() -> None:
    message = registry_error(
        api_host="sis.example.org", token_url=f"https://admin:{SECRET}@sis.example.org/token"
    )
    assert "field 'token_url'" in message and "credentials" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    "api_host",
    [
        "https://springfield.infinitecampus.org",
        "springfield.infinitecampus.org",
        "http://127.0.0.1:8000",
        "http://127.3.2.1:8000",
        "http://localhost:8000",
        "http://[::1]:8000",
        "HTTPS://Sis.Example.org",
    ],
)
def test_https_and_loopback_http_load(api_host: str) -> None:
    loaded = parse_registry({"districts": [district(api_host=api_host)]}).get("springfield")
    for url in (loaded.token_url_resolved, loaded.base_url_resolved):
        assert url.lower().startswith("https://") or "127." in url or "localhost" in url or "[::1]" in url


def test_a_bare_api_host_derives_https() -> None:
    loaded = parse_registry({"districts": [district(api_host="sis.example.org")]}).get("springfield")
    assert loaded.token_url_resolved.startswith("https://sis.example.org/")
    assert loaded.base_url_resolved.startswith("https://sis.example.org/")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("128.0.0.1", False),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("localhost.example.org", False),
        ("127.0.0.1.example.org", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


# --- client config (defence in depth) ---------------------------------------------------------------


def config(**overrides: Any) -> ClientConfig:
    settings: dict[str, Any] = {
        "district_id": "springfield",
        "base_url": "https://sis.example.org/ims/oneroster/v1p1",
        "token_url": "https://sis.example.org/campus/oauth2/token?appName=x",
        "client_id": "cid",
        "client_secret": SECRET,
        **overrides,
    }
    return ClientConfig(**settings)


@pytest.mark.parametrize("field", ["token_url", "base_url"])
def test_client_config_refuses_plain_http_to_a_network_host(field: str) -> None:
    with pytest.raises(InsecureURLError) as info:
        config(**{field: "http://sis.example.org/x"})
    message = str(info.value)
    assert message.startswith(f"district 'springfield': {field} must use https")
    assert info.value.district_id == "springfield" and info.value.field == field
    assert SECRET not in message and SECRET not in repr(info.value)


def test_client_config_accepts_https_and_loopback_http() -> None:
    assert config().token_url.startswith("https://")
    assert config(
        base_url="http://127.0.0.1:9/v1p1", token_url="http://localhost:9/token"
    ).base_url.startswith("http")


def test_client_config_from_the_registry_refuses_what_slipped_past_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A District built without validation (model_construct) still cannot reach the network over http."""
    from roster_pipeline.registry.districts import District

    monkeypatch.setenv("SPRINGFIELD_ID", "cid")
    monkeypatch.setenv("SPRINGFIELD_SECRET", SECRET)
    unchecked = District.model_construct(
        **{
            **District.model_validate(district(api_host="sis.example.org")).__dict__,
            "api_host": "http://sis.example.org",
        }
    )
    with pytest.raises(InsecureURLError, match="district 'springfield': token_url must use https"):
        client_config_for(unchecked)


# --- over loopback: the simulator works, redirects are not followed -------------------------------------


class _Redirector(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, target: str) -> None:
        self.target = target
        self.hits: list[tuple[str, str]] = []
        super().__init__(("127.0.0.1", 0), _RedirectHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _RedirectHandler(BaseHTTPRequestHandler):
    server: _Redirector

    def _redirect(self) -> None:
        self.server.hits.append((self.command, self.path))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(307)  # 307 keeps method and body: following it would re-send the secret
        self.send_header("Location", self.server.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _redirect

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture()
def simulator() -> Iterator[SimulatorServer]:
    with running_simulator(size="tiny", client_id="cid", client_secret=SECRET) as server:
        yield server


@pytest.fixture()
def redirector_factory() -> Iterator[Any]:
    started: list[_Redirector] = []

    def start(target: str) -> _Redirector:
        server = _Redirector(target)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def loopback_config(server: SimulatorServer, **overrides: Any) -> ClientConfig:
    settings = {"base_url": server.base_url("demo"), "token_url": server.token_url("demo"), **overrides}
    return config(backoff_base_seconds=0.01, max_retries=1, **settings)


def test_the_simulator_over_loopback_http_is_fine(simulator: SimulatorServer) -> None:
    with OneRosterClient(loopback_config(simulator)) as client:
        orgs = [r for batch in client.iter_batches("orgs") for r in batch]
    assert len(orgs) == len(simulator.tenant("demo").district.collections["orgs"])


def test_an_api_redirect_is_not_followed_so_the_token_stays_home(
    simulator: SimulatorServer, redirector_factory: Any
) -> None:
    redirector = redirector_factory(simulator.base_url("demo") + "/orgs")
    config = loopback_config(simulator, base_url=redirector.url + "/ims/oneroster/v1p1")
    with OneRosterClient(config) as client, pytest.raises(OneRosterError) as info:
        list(client.iter_batches("orgs"))
    assert "district 'springfield'" in str(info.value) and "307" in str(info.value)
    assert [method for method, _ in redirector.hits] == ["GET"]
    api_requests = [r for r in simulator.requests if "/ims/oneroster/" in r.path]
    assert api_requests == []  # the redirect target never saw the bearer token


def test_a_token_endpoint_redirect_is_not_followed_so_the_secret_stays_home(
    simulator: SimulatorServer, redirector_factory: Any
) -> None:
    redirector = redirector_factory(simulator.token_url("demo"))
    config = loopback_config(simulator, token_url=redirector.url + "/campus/oauth2/token")
    with OneRosterClient(config) as client, pytest.raises(OneRosterError) as info:
        list(client.iter_batches("orgs"))
    assert "district 'springfield'" in str(info.value) and "redirect" in str(info.value)
    assert SECRET not in str(info.value)
    assert [method for method, _ in redirector.hits] == ["POST"]  # refused at once, not retried
    assert [r for r in simulator.requests if "oauth2/token" in r.path] == []


# --- TLS verification is on: an untrusted certificate is refused; SSL_CERT_FILE trusts a private CA ------


@pytest.fixture()
def tls_simulator(tmp_path: Path) -> Iterator[tuple[SimulatorServer, Path]]:
    """The simulator behind TLS with a self-signed certificate for 127.0.0.1 (a self-hosted SIS with a
    private CA). The listening socket is wrapped after start: the simulator itself speaks plain HTTP."""
    cert, key = make_self_signed_cert(tmp_path / "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with running_simulator(size="tiny", client_id="cid", client_secret=SECRET) as server:
        httpd = server._httpd  # the test wraps the listening socket in TLS
        assert httpd is not None
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        yield server, cert


def https_config(server: SimulatorServer) -> ClientConfig:
    return loopback_config(
        server,
        base_url=server.base_url("demo").replace("http://", "https://"),
        token_url=server.token_url("demo").replace("http://", "https://"),
    )


def test_an_untrusted_certificate_is_refused(
    tls_simulator: tuple[SimulatorServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = tls_simulator
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with OneRosterClient(https_config(server)) as client, pytest.raises(OneRosterError) as info:
        list(client.iter_batches("orgs"))
    assert "district 'springfield'" in str(info.value) and "TLS certificate verification failed" in str(
        info.value
    )
    assert server.requests == []  # the handshake failed: not one request (nor the secret) was sent


def test_a_private_ca_is_trusted_through_ssl_cert_file(
    tls_simulator: tuple[SimulatorServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_simulator
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with OneRosterClient(https_config(server)) as client:
        orgs = [r for batch in client.iter_batches("orgs") for r in batch]
    assert len(orgs) == len(server.tenant("demo").district.collections["orgs"])
    assert any("oauth2/token" in r.path for r in server.requests)


def test_no_code_turns_certificate_verification_off() -> None:
    package = PROJECT_ROOT / "roster_pipeline"
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "verify=False" in path.read_text(encoding="utf-8")
        or "CERT_NONE" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_clients_share_one_context_per_trust_setting(
    tls_simulator: tuple[SimulatorServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building a verifying context parses the CA bundle (~25 ms): clients share one, yet a changed
    SSL_CERT_FILE still takes effect for the next client, and a context never trusts what it should not."""
    server, cert = tls_simulator
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    default = verifying_context()
    assert verifying_context() is default
    assert default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    private = verifying_context()
    assert private is not default and verifying_context() is private
    with OneRosterClient(https_config(server)) as client:
        assert [r for batch in client.iter_batches("orgs") for r in batch]
    monkeypatch.delenv("SSL_CERT_FILE")
    assert verifying_context() is default
    with OneRosterClient(https_config(server)) as client, pytest.raises(OneRosterError):
        list(client.iter_batches("orgs"))
