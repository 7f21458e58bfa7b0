"""A OneRoster 1.1 SIS on loopback (Infinite Campus URL layout) with synthetic districts.

Public API (other modules and tests code against exactly this)::

    from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district, running_simulator

``generate_district`` is imported lazily so that importing the server never depends on the
generator module (and never pays for it when a test brings its own district).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roster_pipeline.simulator.district import SimulatedDistrict
from roster_pipeline.simulator.server import RequestRecord, SimulatorServer, Tenant
from roster_pipeline.simulator.testing import SimulatorProcess, running_simulator

if TYPE_CHECKING:
    from roster_pipeline.simulator.generate import generate_district

__all__ = [
    "RequestRecord",
    "SimulatedDistrict",
    "SimulatorProcess",
    "SimulatorServer",
    "Tenant",
    "generate_district",
    "running_simulator",
]


def __getattr__(name: str) -> Any:
    if name == "generate_district":
        from roster_pipeline.simulator.generate import generate_district

        return generate_district
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
