"""The district_status table: what an on-call engineer reads about each district, from the warehouse."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from roster_pipeline.control.status import district_activity, status_markdown
from roster_pipeline.control.store import all_states, create_control_schema, pause_district
from roster_pipeline.registry.districts import load_registry
from roster_pipeline.warehouse import Warehouse


def district(id_: str, **extra: object) -> dict[str, object]:
    return {
        "id": id_,
        "name": f"{id_.title()} Unified",
        "api_host": "https://sis.example.org",
        "app_name": id_,
        "client_id_env": "X_KEY",
        "client_secret_env": "X_SECRET",
        "timezone": "America/Chicago",
        **extra,
    }


def test_status_shows_full_reason_next_run_last_import_overdue_and_thresholds(
    wh: Warehouse, tmp_path: Path
) -> None:
    path = tmp_path / "districts.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "districts": [
                    district("alpha", schedule={"time": "02:30"}),
                    district(
                        "beta",
                        schedule={"frequency": "weekly", "day": "saturday", "time": "23:30"},
                        thresholds={
                            "max_deleted_pct": 5,
                            "resources": {"enrollments": {"max_deleted_pct": 2}},
                        },
                    ),
                ]
            }
        )
    )
    registry = load_registry(path)
    create_control_schema(wh.engine)

    published = wh.begin_import("alpha", "run-a", 2026, sync_mode="full")
    wh.mark_staged(published)
    wh.publish(published)
    held = wh.begin_import("beta", "run-b", 2026, sync_mode="delta")
    wh.hold_import(held, "users: deleted 40.0% > 5%")
    reason = (
        "import held: "
        + "users: 812 of 2,030 published records deleted (40.0%), limit 5%. " * 4
        + "\nsecond line"
    )
    pause_district(
        wh.engine, "beta", by="roster_pipeline sensor", reason=reason, import_id=held, run_id="run-b"
    )

    now = dt.datetime.now(dt.UTC)
    table = status_markdown(
        registry, all_states(wh.engine), {"beta": held}, district_activity(wh, registry), now=now
    )
    status_table = table.split("### ")[0]  # the per-district table, before the sections below it
    rows = {
        line.split(" | ")[0].lstrip("| "): line
        for line in status_table.splitlines()
        if line.startswith(("| alpha", "| beta"))
    }
    alpha = rows["alpha"]
    assert "Alpha Unified" in alpha and "running" in alpha
    assert f"import {published}, full, published" in alpha and "OVERDUE" not in alpha
    assert f"import {held}, delta, held" in rows["beta"] and "PAUSED" in rows["beta"]
    # the reason is cut in the table cell but readable in full below it, line by line
    assert "(in full below)" in rows["beta"]
    assert reason.splitlines()[0] in table and "    second line" in table
    # next run: the district's local time in UTC (02:30 Chicago is 07:30 or 08:30 UTC)
    assert ":30 UTC" in alpha.split(" | ")[9]
    # thresholds in force, with the per-resource override
    assert "| beta | deleted 5%, updated 75%" in table and "enrollments: deleted 2%" in table

    later = status_markdown(
        registry,
        all_states(wh.engine),
        {"beta": held},
        district_activity(wh, registry),
        now=now + dt.timedelta(days=1, hours=7),
    )
    assert "**OVERDUE**" in next(line for line in later.splitlines() if line.startswith("| alpha"))
