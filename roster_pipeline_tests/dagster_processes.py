"""Real Dagster processes for end-to-end tests: ``dagster-webserver`` and ``dagster-daemon`` started as an
operator starts them, stopped with everything they started, and a small client for the webserver's
GraphQL API (what the UI itself speaks).

Each process starts in a session of its own, so its process group holds everything it starts: its code
server and, for the daemon, the run workers that code server launches.  Stopping one waits for that
whole group to be gone (SIGTERM first, so the daemon shuts its code server down and the code server
settles its runs; SIGKILL to the group only past a bound), because a run worker still alive after the test
would write into a database the fixtures are about to drop.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


def executable(name: str) -> str:
    """An installed console script (``dagster-webserver``, ``dagster-daemon``), next to this Python if not on PATH."""
    return shutil.which(name) or str(Path(sys.executable).with_name(name))


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``, read from /proc.

    Zombies are left out: an orphan re-parented to a PID 1 that does not reap would otherwise look alive
    forever although it runs nothing and holds no connection.
    """
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ")"
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


@dataclass
class DagsterProcess:
    """One started command, its combined output in ``log_path``."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 4000) -> str:
        """The end of its output, for a failing assertion's message."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"({self.name} log unreadable: {exc})"
        return (
            f"--- {self.name} (exit code {self.process.poll()}), last {chars} characters of its log ---\n"
            + text[-chars:]
        )

    def stop(self, timeout: float = 120) -> None:
        """SIGTERM, then wait until the process and everything it started have exited; SIGKILL the group
        (only this process's own group) past ``timeout``."""
        pgid = self.process.pid  # start_new_session: the leader's pid is the group id
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        try:
            self.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if group_members(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.alive:
            self.process.wait()


def start_process(
    name: str, argv: Sequence[str], cwd: Path, env: Mapping[str, str], log_dir: Path
) -> DagsterProcess:
    """Starts ``argv`` in a new session (its own process group), output to ``log_dir/<name>.log``."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return DagsterProcess(name, process, log_path)


class GraphQLError(AssertionError):
    """The webserver answered with GraphQL errors (a malformed query, a resolver that raised)."""


class GraphQL:
    """POST /graphql on a running dagster-webserver, as the UI does."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._client = httpx.Client(base_url=base_url, timeout=60)

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self._client.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def server_up(self) -> bool:
        """Whether the webserver answers HTTP yet (it serves /server_info once its code locations load)."""
        try:
            return self._client.get("/server_info", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self._client.close()


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    diagnostics: Callable[[], str],
    interval: float = 1.0,
) -> T:
    """The first truthy value of ``probe()`` (None, False, an empty list: not yet); fails with
    ``diagnostics()`` after ``timeout`` s.

    The bound is against a hang, never a timing assertion: pick it generously.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting after {timeout:.0f} s for {what}\n{diagnostics()}")
        time.sleep(interval)
