"""One partition per district, named by the district's registry id.

Static partitions (rather than dynamic ones) because the registry file is the source of truth: a new
district appears after a code-location reload, with no run or sensor needed to register it.
"""

from __future__ import annotations

import dagster as dg

from roster_pipeline.registry.districts import Registry


def district_partitions(registry: Registry) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(registry.districts))
