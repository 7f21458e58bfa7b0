"""How fast the simulator serves the large district (run with ``pytest -m benchmark -s``).

The server runs in its own process (SimulatorProcess) so the figures are the server's, not a GIL
shared with the client. Generation time is excluded: the clock starts once the server says ready.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import orjson
import pytest

from roster_pipeline.simulator import SimulatorProcess

PAGE = 10_000


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of the server process: its own cost, whatever else loads the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.benchmark
def test_serve_one_million_enrollments(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    with SimulatorProcess(size="large", seed=1, extra_args=["--quiet", "--max-page-size", "50000"]) as proc:
        ready = time.monotonic() - started
        rss_idle = _rss_mb(proc.pid)
        with httpx.Client(timeout=120) as client:
            token = client.post(
                proc.token_url, data={"grant_type": "client_credentials"}, auth=("demo-client", "demo-secret")
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}

            def pull(params: dict[str, str], parse: bool = False) -> tuple[int, float, float, int, float]:
                """Page through /enrollments; without ``parse`` the client only reads the bytes, so the
                figure is the server's serving rate rather than the client's JSON decoding."""
                t0 = time.monotonic()
                cpu0 = _cpu_seconds(proc.pid)
                first_page = 0.0
                seen = offset = nbytes = 0
                total: int | None = None
                while total is None or offset < total:
                    r = client.get(
                        f"{proc.base_url}/enrollments",
                        headers=headers,
                        params={**params, "limit": str(PAGE), "offset": str(offset)},
                    )
                    r.raise_for_status()
                    nbytes += len(r.content)
                    if not first_page:
                        first_page = time.monotonic() - t0
                    total = int(r.headers["x-total-count"])
                    if parse:
                        seen += len(orjson.loads(r.content)["enrollments"])
                    else:
                        seen += min(PAGE, total - offset)
                    offset += PAGE
                return seen, time.monotonic() - t0, first_page, nbytes, _cpu_seconds(proc.pid) - cpu0

            runs = {
                "natural order, bytes only": pull({}),
                "natural order + client orjson": pull({}, parse=True),
                "sort=sourcedId (cold index)": pull({"sort": "sourcedId"}),
                "sort=sourcedId (cached index)": pull({"sort": "sourcedId"}),
                "delta dateLastModified>3 Aug": pull({"filter": "dateLastModified>'2026-08-03T12:00:00Z'"}),
            }
        rss_after = _rss_mb(proc.pid)
        hwm = _hwm_mb(proc.pid)
    with capsys.disabled():
        print(
            f"\nlarge district ready (generation + index-free startup) in {ready:.1f}s; server RSS idle {rss_idle:.0f} MB"
        )
        for label, (n, secs, first, nbytes, cpu) in runs.items():
            print(
                f"  {label:34s} {n:>9,} enrollments in {secs:6.2f}s wall ({n / secs:>7,.0f}/s), server CPU {cpu:5.2f}s, "
                f"first page {first * 1000:.0f} ms, {nbytes / 1e6:.0f} MB"
            )
        print(f"  server RSS after: {rss_after:.0f} MB (peak {hwm:.0f} MB)")
    assert runs["natural order + client orjson"][0] == runs["natural order, bytes only"][0] >= 900_000
