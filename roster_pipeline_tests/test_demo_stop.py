"""Stopping the UI demo stops everything it started.

A service manager or ``kill`` sends SIGTERM to the demo process alone (Ctrl-C reaches the whole
foreground process group). The demo used to exit on it and leave ``dagster dev``, its webserver and its
daemon running, holding the port and the demo's instance. This starts the real UI demo, waits until the
webserver answers, sends SIGTERM to the demo process only, and checks that no process it started is left.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_SECONDS = 180
STOP_TIMEOUT_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, from /proc (parents by ppid)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
    except OSError:
        return "?"


@pytest.mark.skipif(sys.platform != "linux", reason="reads the process tree from /proc")
def test_sigterm_to_the_ui_demo_stops_dagster_dev_and_everything_it_started(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "ROSTER_"))}
    log = (tmp_path / "demo.log").open("w")
    demo = subprocess.Popen(
        [sys.executable, "-m", "roster_pipeline.cli", "demo", "--dagster-port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started: set[int] = set()
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            assert demo.poll() is None, (
                f"the demo ended early:\n{(tmp_path / 'demo.log').read_text()[-3000:]}"
            )
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"no UI after {START_TIMEOUT_SECONDS} s"
            time.sleep(1)
        started = descendants(demo.pid)
        assert any("dagster" in command_line(pid) for pid in started), "no dagster process under the demo"

        demo.send_signal(signal.SIGTERM)  # to the demo alone, not its process group
        demo.wait(timeout=STOP_TIMEOUT_SECONDS)

        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while alive(started) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = {pid: command_line(pid) for pid in alive(started)}
        assert not left, f"still running after the demo stopped: {left}"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2)
    finally:
        for pid in alive(started | {demo.pid}):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        demo.wait(timeout=30)
        log.close()
