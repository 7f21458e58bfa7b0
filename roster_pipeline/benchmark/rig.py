"""The benchmark's fixed parts: the simulated district, its credentials, the warehouse database, child envs.

Every loader the benchmark compares (the real Dagster job, the limit loader, the naive script, dlt) runs
as a child process against the same simulator tenant, page size and concurrency, so this module is what
they share: where the SIS is, under which env var names the credentials travel (never argv, which any
user can read with ``ps``), and which database they write to.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import roster_pipeline

KEY_ENV = "ROSTER_BENCH_KEY"
SECRET_ENV = "ROSTER_BENCH_SECRET"
APP_NAME = "bench"
CLIENT_ID = "bench-client"


@dataclass(frozen=True)
class BenchDistrict:
    """One simulator tenant as every loader of the benchmark sees it."""

    district_id: str
    size: str
    seed: int
    simulator_url: str  # http://127.0.0.1:PORT (admin endpoints hang off it)
    token_url: str
    base_url: str
    page_size: int
    concurrency: int
    simulator_pid: int | None
    client_secret: str = field(repr=False)

    def credentials_env(self) -> dict[str, str]:
        return {KEY_ENV: CLIENT_ID, SECRET_ENV: self.client_secret}

    def registry_entry(self) -> dict[str, Any]:
        """The district as the registry file names it: credentials by env var NAME, never by value."""
        return {
            "id": self.district_id,
            "name": f"Benchmark district ({self.size}, seed {self.seed})",
            "sis": "infinite_campus",
            "api_host": self.simulator_url,
            "app_name": APP_NAME,
            "client_id_env": KEY_ENV,
            "client_secret_env": SECRET_ENV,
            "page_size": self.page_size,
            "max_concurrency": self.concurrency,
            "schedule": {"frequency": "manual"},
        }

    def record_counts(self) -> dict[str, int]:
        """What the simulator holds per OneRoster collection (its loopback stats endpoint)."""
        response = httpx.get(f"{self.simulator_url}/_simulator/{APP_NAME}/stats", timeout=60)
        response.raise_for_status()
        return {str(k): int(v) for k, v in response.json()["counts"].items()}


def new_secret() -> str:
    return uuid.uuid4().hex


def change_users(simulator_url: str, app_name: str, percent: float) -> int:
    """Apply ``change_users`` through the simulator's loopback admin endpoint (it runs in another process)."""
    response = httpx.post(
        f"{simulator_url}/_simulator/{app_name}/mutations",
        json={"kind": "change_users", "params": {"percent": percent, "seed": 1}},
        timeout=600,
    )
    response.raise_for_status()
    return int(response.json()["changes"]["users"]["updated"])


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a measured child: this one without ROSTER_*/DAGSTER_HOME, plus ``extra``.

    PYTHONPATH starts with the folder holding the ``roster_pipeline`` this harness imported, so a child
    runs the same code even from a scratch working directory.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROSTER_", "DAGSTER_"))}
    root = str(Path(roster_pipeline.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(
        [root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    )
    env.update(extra)
    return env
