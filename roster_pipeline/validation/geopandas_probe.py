"""Keep pandera from looking for geopandas on every column of every batch.

pandera asks whether each column's type is a geopandas geometry by importing ``geopandas.array`` on
each call (``pandera.engines.pandas_engine.is_geopandas_dtype``).  Python remembers a module it found,
not one it did not: where geopandas is not installed, every call searches ``sys.path`` again.  Measured
per ``validate_batch`` of 20 records: users 4.0 → 3.35 ms, enrollments 6.85 → 6.1 ms (11-16%), on every
page of every resource of every sync.

Where geopandas is absent, ``sys.modules["geopandas"] = None`` is Python's own way to say "not
installed" once: the import then fails at once, as it would after the search.  Where it is installed,
nothing changes.
"""

from __future__ import annotations

import importlib.util
import sys


def remember_that_geopandas_is_absent() -> bool:
    """Record geopandas as not installed, if it is not; True when it was recorded."""
    if "geopandas" in sys.modules or importlib.util.find_spec("geopandas") is not None:
        return False
    sys.modules["geopandas"] = None  # type: ignore[assignment]  # None: "no such module", by Python's rules
    return True
