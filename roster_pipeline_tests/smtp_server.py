"""A real SMTP server for tests: aiosmtpd in a background thread on a free loopback port.

Fixtures (register with ``pytest_plugins = ["roster_pipeline_tests.smtp_server"]`` in conftest.py):

- ``smtp_server``: a plain server, no AUTH, no TLS; ``.host``, ``.port``, ``.messages`` (parsed
  ``email.message.EmailMessage``, in arrival order) and ``.envelopes`` (MAIL FROM / RCPT TO / login).
- ``smtp_server_factory(username=, password=, starttls=)``: more servers, with AUTH (PLAIN/LOGIN, required
  once a username is given) and/or STARTTLS with a self-signed certificate generated on the spot
  (``.ca_file`` is the PEM to trust).  All are stopped at the end of the test.

``fail_next_data(n, code)`` makes the next ``n`` DATA commands fail with ``code`` (e.g. 451, a temporary
failure), so retry paths can be tested against a real server rather than a mock.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Self

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A port nobody listens on right now (aiosmtpd's readiness probe cannot use port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def make_self_signed_cert(folder: Path, host: str = HOST) -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (IP SAN + localhost), valid for a day: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "roster-pipeline test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass(frozen=True)
class CapturedEnvelope:
    """One accepted message: the SMTP envelope, who logged in, and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    login: str | None
    tls: bool
    raw: bytes
    message: EmailMessage


class _Handler:
    def __init__(self, server: SmtpTestServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        return self.server._accept(session, envelope)


class SmtpTestServer:
    """An in-process SMTP server capturing what it receives. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        cert_dir: Path | None = None,
        host: str = HOST,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        if starttls and cert_dir is None:
            raise ValueError("starttls needs cert_dir (a folder for the generated certificate)")
        self.host = host
        self.port = 0
        self.username = username
        self.password = password
        self.starttls = starttls
        self.ca_file: Path | None = None
        self.auth_attempts: list[tuple[str, bool]] = []  # (login, succeeded)
        self._cert_dir = cert_dir
        self._lock = threading.Lock()
        self._envelopes: list[CapturedEnvelope] = []
        self._fail_next: list[tuple[int, str]] = []
        self._controller: Controller | None = None

    # -- what the tests read
    @property
    def envelopes(self) -> list[CapturedEnvelope]:
        with self._lock:
            return list(self._envelopes)

    @property
    def messages(self) -> list[EmailMessage]:
        return [e.message for e in self.envelopes]

    def clear(self) -> None:
        with self._lock:
            self._envelopes.clear()

    def fail_next_data(
        self, count: int = 1, code: int = 451, text: str = "Requested action aborted: try again later"
    ) -> None:
        with self._lock:
            self._fail_next.extend([(code, text)] * count)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.envelopes) >= count:
                return self.messages
            time.sleep(0.01)
        raise AssertionError(
            f"expected {count} message(s) at {self.host}:{self.port}, got {len(self.envelopes)}"
        )

    # -- server side
    def _accept(self, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self._fail_next:
                code, text = self._fail_next.pop(0)
                return f"{code} {text}"
        raw = bytes(envelope.original_content or envelope.content or b"")
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        login = session.auth_data if isinstance(session.auth_data, str) else None  # set by _authenticate
        captured = CapturedEnvelope(
            str(envelope.mail_from), list(envelope.rcpt_tos), login, session.ssl is not None, raw, message
        )
        with self._lock:
            self._envelopes.append(captured)
        return "250 Message accepted for delivery"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        ok = login == self.username and auth_data.password.decode("utf-8", "replace") == self.password
        with self._lock:
            self.auth_attempts.append((login, ok))
        # handled=False: aiosmtpd sends the 235 / 535 reply itself (True would mean "I already replied").
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    def start(self) -> SmtpTestServer:
        kwargs: dict[str, Any] = {"server_hostname": "localhost"}
        if self.starttls:
            assert self._cert_dir is not None
            cert, key = make_self_signed_cert(self._cert_dir, self.host)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            kwargs.update(tls_context=context, require_starttls=True)
            self.ca_file = cert
        if self.username is not None:
            kwargs.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=self.starttls
            )
        last_error: Exception | None = None
        for _ in range(5):  # the free port can be taken between probing and binding: try another
            self.port = free_port(self.host)
            controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
            try:
                controller.start()
            except Exception as exc:  # noqa: BLE001
                last_error = exc
                continue
            self._controller = controller
            return self
        raise RuntimeError(f"could not start the test SMTP server: {last_error}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SmtpTestServer({self.host}:{self.port}, auth={self.username is not None}, starttls={self.starttls})"


@pytest.fixture()
def smtp_server() -> Iterator[SmtpTestServer]:
    """A plain SMTP server on loopback (no AUTH, no TLS), stopped after the test."""
    with SmtpTestServer() as server:
        yield server


@pytest.fixture()
def smtp_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., SmtpTestServer]]:
    """Start servers with AUTH and/or STARTTLS: ``smtp_server_factory(username="u", password="p", starttls=True)``."""
    started: list[SmtpTestServer] = []

    def start(
        *, username: str | None = None, password: str | None = None, starttls: bool = False
    ) -> SmtpTestServer:
        cert_dir = tmp_path_factory.mktemp("smtp-tls") if starttls else None
        server = SmtpTestServer(
            username=username, password=password, starttls=starttls, cert_dir=cert_dir
        ).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


__all__ = [
    "CapturedEnvelope",
    "SmtpTestServer",
    "free_port",
    "make_self_signed_cert",
    "smtp_server",
    "smtp_server_factory",
]
