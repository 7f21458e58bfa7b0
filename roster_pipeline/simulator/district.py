"""The in-memory state of one simulated district: the contract between generator, mutations and server.

Records are plain OneRoster 1.1 JSON objects (dicts exactly as the API serves them), held per *base*
collection (``orgs``, ``academicSessions``, ``courses``, ``classes``, ``users``, ``enrollments``,
``demographics``) and keyed by ``sourcedId``.  Derived endpoints (``/schools``, ``/students``,
``/terms`` ...) are views the server computes over these.

``version`` increases on every mutation; the server keys its sorted/filtered index caches on it, so
serving stays O(page) per request and a mutation invalidates exactly once.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any

BASE_COLLECTIONS: tuple[str, ...] = (
    "orgs",
    "academicSessions",
    "courses",
    "classes",
    "users",
    "enrollments",
    "demographics",
)

Record = dict[str, Any]


@dataclass
class SimulatedDistrict:
    """One district's records. Mutate only through ``roster_pipeline.simulator.mutations``."""

    name: str
    seed: int
    size: str
    school_year: int  # the ending year, as OneRoster's schoolYear ("2027" for 2026-27)
    collections: dict[str, dict[str, Record]] = field(
        default_factory=lambda: {name: {} for name in BASE_COLLECTIONS}
    )
    version: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def bump(self) -> None:
        """Record that the data changed (invalidates the server's caches)."""
        self.version += 1

    def __deepcopy__(self, memo: dict[int, Any]) -> SimulatedDistrict:
        """Tests copy one generated district instead of regenerating it; the copy gets its own lock."""
        with self.lock:
            return SimulatedDistrict(
                name=self.name,
                seed=self.seed,
                size=self.size,
                school_year=self.school_year,
                collections=copy.deepcopy(self.collections, memo),
                version=self.version,
            )

    def count(self, collection: str) -> int:
        return len(self.collections[collection])
