"""Dagster resources: where the warehouse is and which districts exist.

Both are thin: the real work lives in ``roster_pipeline.warehouse`` and ``roster_pipeline.registry.districts`` so
that the demo, the benchmark and tests use the same code without Dagster.
"""

from __future__ import annotations

import functools

import dagster as dg

from roster_pipeline.control.store import create_control_schema
from roster_pipeline.registry.districts import Registry, load_registry
from roster_pipeline.warehouse import Warehouse


@functools.lru_cache(maxsize=8)
def _warehouse(database_url: str | None) -> Warehouse:
    """One engine per URL and process; the schema is created (idempotently) the first time it is used."""
    warehouse = Warehouse(database_url)
    warehouse.create_schema()
    create_control_schema(warehouse.engine)  # pause state, review audit, email ledger (same database)
    return warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The roster warehouse. Empty URL: ``ROSTER_DATABASE_URL``, else the embedded SQLite file."""

    database_url: str | None = None

    def get(self) -> Warehouse:
        return _warehouse(self.database_url)


class DistrictRegistryResource(dg.ConfigurableResource):
    """The district registry. Empty path: ``ROSTER_DISTRICTS_FILE``, else the example shipped in the package."""

    districts_file: str | None = None

    def get(self) -> Registry:
        return load_registry(self.districts_file)
