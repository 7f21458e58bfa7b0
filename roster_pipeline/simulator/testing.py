"""Starting the simulator from Python: in-process (tests, demo) or as a subprocess (benchmarks).

In-process is the default because tests can then reach into the server (faults, request log,
mutating the district directly). Benchmarks use SimulatorProcess so the server's Python does not
share a GIL with the client being measured.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from roster_pipeline.simulator.district import SimulatedDistrict
from roster_pipeline.simulator.server import SimulatorServer, Tenant

if TYPE_CHECKING:
    from roster_pipeline.simulator.generate import Size

DEFAULT_APP = "demo"
DEFAULT_CLIENT_ID = "demo-client"
DEFAULT_CLIENT_SECRET = "demo-secret"


@contextmanager
def running_simulator(
    size: Size = "tiny",
    seed: int = 1,
    app_name: str = DEFAULT_APP,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    *,
    district: SimulatedDistrict | None = None,
    **server_kwargs: Any,
) -> Iterator[SimulatorServer]:
    """A started single-tenant simulator on a free port, stopped on exit.

    Pass ``district=`` to serve a prepared district instead of generating one from size/seed.
    """
    if district is None:
        from roster_pipeline.simulator.generate import generate_district

        district = generate_district(size, seed)
    server_kwargs.setdefault("port", 0)
    server = SimulatorServer([Tenant(app_name, client_id, client_secret, district)], **server_kwargs)
    with server:
        yield server


def console_command() -> list[str]:
    """How to run ``roster-pipeline``: the installed console script, else the module."""
    script = shutil.which("roster-pipeline")
    return [script] if script else [sys.executable, "-m", "roster_pipeline.cli"]


class SimulatorProcess:
    """``roster-pipeline simulator --port 0 ...`` in a subprocess; reads the URLs it prints.

    Use as a context manager. ``extra_args`` are passed through (``["--max-page-size", "50000"]``).
    """

    def __init__(
        self,
        size: str = "tiny",
        seed: int = 1,
        app_name: str = DEFAULT_APP,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        *,
        host: str = "127.0.0.1",
        extra_args: list[str] | None = None,
        startup_timeout: float = 900.0,
    ) -> None:
        self.size, self.seed, self.app_name = size, seed, app_name
        self.client_id, self.client_secret = client_id, client_secret
        self.host = host
        self.extra_args = list(extra_args or [])
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[str] | None = None
        self.token_url = ""
        self.base_url = ""
        self.url = ""
        self._log = tempfile.NamedTemporaryFile(prefix="simulator-", suffix=".log", delete=False)
        self.log_path = Path(self._log.name)

    def start(self) -> SimulatorProcess:
        args = [
            *console_command(),
            "simulator",
            "--host",
            self.host,
            "--port",
            "0",
            "--size",
            self.size,
            "--seed",
            str(self.seed),
            "--app-name",
            self.app_name,
            "--client-id",
            self.client_id,
            *self.extra_args,
        ]
        env = dict(os.environ)
        # The secret travels by environment, not argv: argv is visible to every user via ps.
        env["ROSTER_SIMULATOR_CLIENT_SECRET"] = self.client_secret
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env, bufsize=1
        )
        deadline = time.monotonic() + self.startup_timeout
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            if not line:
                code = self.process.wait()
                raise RuntimeError(
                    f"simulator exited with {code} before it was ready; log: {self.log_text()}"
                )
            if line.strip().startswith("token URL:"):
                self.token_url = line.split(":", 1)[1].strip()
            elif line.strip().startswith("API base URL:"):
                self.base_url = line.split(":", 1)[1].strip()
            elif line.strip() == "ready":
                break
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("simulator did not become ready in time")
        self.url = (self.token_url or self.base_url).split("/campus/", 1)[
            0
        ]  # no token URL under --auth oauth1
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int | None:
        proc, self.process = self.process, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
        self._log.close()
        return proc.returncode

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
