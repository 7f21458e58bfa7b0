"""One way to point a OneRoster client at the simulator, shared by the client test modules."""

from __future__ import annotations

from typing import Any

from roster_pipeline.oneroster import ClientConfig
from roster_pipeline.simulator import SimulatorServer


def simulator_client_config(server: SimulatorServer, app: str, **settings: Any) -> ClientConfig:
    """A client of the simulator's tenant ``app`` for district springfield, with short backoffs (tests
    wait for retries, not for production's pacing); ``settings`` (credentials first of all) win."""
    defaults: dict[str, Any] = {
        "district_id": "springfield",
        "base_url": server.base_url(app),
        "token_url": server.token_url(app),
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 1.0,
    }
    return ClientConfig(**{**defaults, **settings})
