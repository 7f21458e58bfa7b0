"""A Dagster code location for the run-worker crash tests: the real definitions, plus a SIGKILL.

``ROSTER_TEST_KILL_AT`` makes the process that runs the sync kill itself, with SIGKILL (nothing runs
after it: no ``finally``, no ``except``, no Dagster event), at a chosen point:

- ``load:<resource>``: right after the first batch of ``<resource>`` is committed to staging;
- ``publish:<resource>``: inside the publish transaction, right after ``<resource>``'s changes were
  applied to the published tables (and before the transaction commits).

Only the test's own subprocesses import this module (their workspace points at it); nothing in the
package knows about it.  Without the variable it is exactly ``roster_pipeline.definitions``.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from roster_pipeline.definitions import build_definitions
from roster_pipeline.records.catalogue import resource
from roster_pipeline.warehouse import core, diff

KILL_AT_VARIABLE = "ROSTER_TEST_KILL_AT"


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill(point: str) -> None:
    where, _, name = point.partition(":")
    if where == "load":
        original_stage_rows = core.Warehouse.stage_rows  # every batch is loaded through it

        def stage_rows(self: core.Warehouse, import_id: int, resource_name: str, rows: Any) -> int:
            staged = original_stage_rows(self, import_id, resource_name, rows)
            if resource(resource_name).name == name and staged:
                _die()
            return staged

        core.Warehouse.stage_rows = stage_rows  # type: ignore[method-assign]
    elif where == "publish":
        original_apply = diff.apply_changes

        def apply_changes(conn: Any, tables: Any, *args: Any, **kwargs: Any) -> Any:
            result = original_apply(conn, tables, *args, **kwargs)
            if tables.published.name == name:
                _die()
            return result

        diff.apply_changes = apply_changes
    else:
        raise ValueError(f"{KILL_AT_VARIABLE} must be load:<resource> or publish:<resource>, got {point!r}")


if os.environ.get(KILL_AT_VARIABLE):
    install_kill(os.environ[KILL_AT_VARIABLE])

defs = build_definitions()
