"""`roster-pipeline bench`'s pieces: the loaders it compares with, its measurements and its report.

The bench end to end on the tiny district is the README's smoke run (test_readme_commands.py), whose
output is checked there: the real job ran, every loader fetched exactly the simulator's records, and the
final line carries every key.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from pydantic import SecretStr

from roster_pipeline.benchmark.dagster_run import JobRun, metadata_dict, step_durations
from roster_pipeline.benchmark.limit import LimitLoader
from roster_pipeline.benchmark.measure import Usage, run_measured
from roster_pipeline.benchmark.report import FINAL_KEYS, TARGETS, Figures, parse_final_line
from roster_pipeline.oneroster.config import ClientConfig
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.simulator import running_simulator
from roster_pipeline.warehouse.databases import libpq_url


def simulator_counts(server) -> dict[str, int]:  # type: ignore[no-untyped-def]
    collections = server.tenant("demo").district.collections
    return {r.name: len(collections[r.collection]) for r in RESOURCES}


@pytest.mark.postgres
def test_limit_loader_stages_exactly_the_simulators_records(postgres_url: str) -> None:
    """Seven-record pages: many offsets, a short last page, and totals that are multiples of the page."""
    with running_simulator(size="tiny", seed=2) as server:
        config = ClientConfig(
            district_id="t",
            base_url=server.base_url("demo"),
            token_url=server.token_url("demo"),
            client_id="demo-client",
            client_secret=SecretStr("demo-secret"),
            page_size=7,
            max_concurrency=3,
        )
        loader = LimitLoader(config, libpq_url(postgres_url), schema="bench_limit_test")
        try:
            counts = loader.load()
        finally:
            loader.close()
        expected = simulator_counts(server)
    assert counts == expected
    with psycopg.connect(libpq_url(postgres_url)) as conn:
        for resource in RESOURCES:
            stored, distinct = conn.execute(
                f'SELECT count(*), count(DISTINCT sourced_id) FROM bench_limit_test."{resource.name}"'
            ).fetchone()
            assert stored == distinct == expected[resource.name], resource.name
        persistence = conn.execute(
            "SELECT relpersistence FROM pg_class WHERE relname = 'users' AND relnamespace = 'bench_limit_test'::regnamespace"
        ).fetchone()
    assert persistence == ("u",)  # unlogged


@pytest.mark.postgres
def test_naive_script_loads_every_record(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from roster_pipeline.benchmark import naive

    monkeypatch.setenv("ROSTER_BENCH_KEY", "demo-client")
    monkeypatch.setenv("ROSTER_BENCH_SECRET", "demo-secret")
    with running_simulator(size="tiny", seed=2) as server:
        assert (
            naive.main(
                [
                    "--base-url",
                    server.base_url("demo"),
                    "--token-url",
                    server.token_url("demo"),
                    "--database-url",
                    postgres_url,
                    "--page-size",
                    "7",
                    "--schema",
                    "naive_test",
                ]
            )
            == 0
        )
        expected = simulator_counts(server)
    with psycopg.connect(libpq_url(postgres_url)) as conn:
        for resource in RESOURCES:
            stored = conn.execute(f'SELECT count(*) FROM naive_test."{resource.name}"').fetchone()
            assert stored is not None and stored[0] == expected[resource.name], resource.name


def test_final_line_ratios_and_verdicts() -> None:
    figures = Figures(
        full_s=10.0,
        limit_s=8.0,
        dlt_s=40.0,
        naive_s=30.0,
        rss_mb=250.0,
        delta_s=0.4,
        nochange_s=10.5,
        validate_s=1.0,
        check_s=0.5,
    )
    values = parse_final_line(figures.final_line())
    assert tuple(values) == FINAL_KEYS
    assert values["ratio_limit"] == pytest.approx(1.25) and values["ratio_dlt"] == pytest.approx(4.0)
    assert values["naive_ratio"] == pytest.approx(3.0) and values["checks_overhead"] == pytest.approx(0.15)
    assert math.isnan(values["rss_small_mb"])
    verdicts = {t.key: t.verdict(values[t.key]) for t in TARGETS}
    assert (
        verdicts["ratio_limit"] == "ok"
        and verdicts["ratio_dlt"] == "ok"
        and verdicts["naive_ratio"] == "MISSED"
    )
    assert (
        verdicts["delta_ratio"] == "ok" and verdicts["nochange_ratio"] == "ok" and verdicts["rss_mb"] == "ok"
    )
    assert Figures().final_line().count("nan") == len(FINAL_KEYS)


def test_stage_seconds_sum_over_assets_and_missing_stages_are_none() -> None:
    run = JobRun(label="full", mode="full", usage=Usage(12.0, 5.0, 1.0, 100.0, 0))
    run.stage_seconds = {
        "users": {"fetch": 1.0, "validate": 0.5},
        "orgs": {"fetch": 0.25},
        "checked_snapshot": {"check": 2.0},
    }
    run.step_seconds = {"users": 3.0, "orgs": 1.0}
    assert run.stage_total("fetch") == 1.25 and run.stage_total("check") == 2.0
    assert run.stage_total("publish") is None
    assert run.overhead_s == 8.0


def test_event_log_helpers() -> None:
    def entry(kind: str, step: str, at: float) -> SimpleNamespace:
        return SimpleNamespace(
            dagster_event=SimpleNamespace(event_type_value=kind), step_key=step, timestamp=at
        )

    entries = [
        entry("STEP_START", "users", 1.0),
        entry("STEP_START", "orgs", 1.5),
        entry("STEP_SUCCESS", "orgs", 2.0),
        entry("STEP_SUCCESS", "users", 4.5),
    ]
    assert step_durations(entries) == {"orgs": 0.5, "users": 3.5}
    assert metadata_dict(SimpleNamespace(data={"fetch": 1.0})) == {"fetch": 1.0}
    assert metadata_dict('{"publish": 2}') == {"publish": 2}
    assert metadata_dict(None) is None and metadata_dict(SimpleNamespace(value="[1]")) is None


def test_run_measured_reports_the_childs_cpu_and_rss(tmp_path: Path) -> None:
    usage = run_measured(
        [sys.executable, "-c", "b = bytearray(80 * 1024 * 1024); sum(range(3_000_000))"],
        env=dict(os.environ),
        cwd=tmp_path,
        log_path=tmp_path / "log",
        simulator_pid=None,
    )
    assert usage.returncode == 0 and usage.wall_s > 0 and usage.cpu_s > 0
    assert usage.peak_rss_mb >= 80 and math.isnan(usage.sim_cpu_s)
