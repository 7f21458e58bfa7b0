"""What a benchmark phase cost: wall seconds, CPU seconds, peak RSS, and the simulator's CPU meanwhile.

Every phase runs as a child process so that its peak RSS and CPU time are its own (``os.wait4`` hands
both back with the exit status) and not mixed with the harness's.  The simulator runs in yet another
process; its CPU seconds over the same interval (``/proc/<pid>/stat``) show whether it, rather than the
loader, was the bottleneck: a simulator near one CPU second per wall second is saturated.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """One measured child process (its descendants' CPU included)."""

    wall_s: float
    cpu_s: float  # user + sys of the child and the children it waited for
    sim_cpu_s: float  # the simulator's user + sys over the same interval (nan when not measured)
    peak_rss_mb: float  # ru_maxrss: the largest resident set of the child (or of a descendant)
    returncode: int

    @property
    def sim_share(self) -> float:
        """Simulator CPU seconds per wall second: 1.0 means one core saturated (it can use no more: GIL)."""
        return self.sim_cpu_s / self.wall_s if self.wall_s > 0 else float("nan")


def process_cpu_seconds(pid: int | None) -> float:
    """user + sys seconds a running process has used so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    if pid is None:
        return float("nan")
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # the command name may contain spaces
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def peak_rss_of(pid: int) -> float:
    """Peak resident set (VmHWM) of a running process in MB, e.g. the simulator's."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_measured(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    simulator_pid: int | None,
    timeout_s: float | None = None,
) -> Usage:
    """Run ``command`` to completion with stdout+stderr into ``log_path``; measure it with ``os.wait4``.

    ``subprocess.run`` would reap the child with ``waitpid`` and lose its rusage, hence the explicit
    ``wait4`` (which blocks, so a timeout is enforced by a watchdog kill).
    """
    import threading

    sim_before = process_cpu_seconds(simulator_pid)
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            list(command), env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
        watchdog = None
        if timeout_s is not None:
            watchdog = threading.Timer(timeout_s, process.kill)
            watchdog.start()
        try:
            _, status, rusage = os.wait4(process.pid, 0)
        finally:
            if watchdog is not None:
                watchdog.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
    wall = time.perf_counter() - started
    sim_cpu = process_cpu_seconds(simulator_pid) - sim_before
    return Usage(
        wall_s=wall,
        cpu_s=rusage.ru_utime + rusage.ru_stime,
        sim_cpu_s=sim_cpu,
        peak_rss_mb=rusage.ru_maxrss / 1024,
        returncode=process.returncode,
    )
