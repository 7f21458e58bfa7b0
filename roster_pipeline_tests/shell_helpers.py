"""Running README command lines the way a user does: in bash, from a folder laid out like the repository root.

Shared by the tests that run the README's commands (test_readme_commands.py) and the demo's folder tests
(test_demo_commands.py).  The shell gets the user's environment minus the settings that would hide what
the commands themselves pick up (a DAGSTER_HOME, a registry, a warehouse URL), and the project's python
first on the PATH, so ``roster-pipeline`` and ``dagster`` are this checkout's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from roster_pipeline_tests.paths import PROJECT_ROOT

# What the README tells a user to type in a second shell while `roster-pipeline demo` runs.
SOURCE_SETTINGS = "source .roster_pipeline/demo.env"

# Settings a user's shell may carry that would hide what the commands themselves pick up.
UNSET = ("DAGSTER_HOME", "ROSTER_DATABASE_URL", "ROSTER_DISTRICTS_FILE", "ROSTER_OUTBOX_DIR")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The user's environment without a deployment's settings, the project's python first on the PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in UNSET and not k.startswith(("DAGSTER_PG_", "ROSTER_DEMO_"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def shell(
    command: str, cwd: Path, extra_env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a line as a user pastes it into bash."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=clean_env(extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def copy_repository_layout(folder: Path) -> Path:
    """A folder laid out like the repository root: the production dagster.yaml and the workspace.yaml.

    The commands are run there rather than in the checkout, so that nothing they write (the demo's
    ``.roster_pipeline/`` folder) lands in the repository, while Dagster still finds what it finds in a
    clone's root (the production ``dagster.yaml`` it must never use for local work, ``workspace.yaml``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("dagster.yaml", "workspace.yaml"):
        shutil.copy(PROJECT_ROOT / name, folder / name)
    return folder


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class BackgroundCommand:
    """A long-running README command (a server) started in bash, its output going to a file.

    Output goes to a file rather than a pipe so that a chatty server never blocks on a full pipe while
    the test runs other commands.  The command runs in its own process group, so stopping it stops
    bash and whatever it started, and nothing else.
    """

    command: str
    cwd: Path
    log: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self, ready: str, timeout: float = 120) -> str:
        """Start it and wait until a line of its output starts with ``ready``; returns the output so far."""
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["bash", "-c", self.command],
                cwd=self.cwd,
                env=clean_env(self.extra_env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            printed = self.output()
            if any(line.startswith(ready) for line in printed.splitlines()):
                return printed
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.command!r} exited {self.process.returncode} before it was ready:\n"
                    f"{printed[-3000:]}"
                )
            time.sleep(0.2)
        raise AssertionError(
            f"{self.command!r} printed no line starting {ready!r} in {timeout}s:\n{self.output()[-3000:]}"
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM to its process group (Ctrl-C's polite sibling); returns its exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        return self.process.returncode
