"""The console command a newcomer runs first: `roster-pipeline demo --once` (`roster-pipeline bench`: test_bench.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from roster_pipeline.records.catalogue import RESOURCES


def run_command(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "roster_pipeline.cli", *args]
    environ = {
        k: v for k, v in os.environ.items() if k not in ("ROSTER_DATABASE_URL", "ROSTER_DISTRICTS_FILE")
    }
    return subprocess.run(
        command, cwd=cwd, env={**environ, **(env or {})}, capture_output=True, text=True, timeout=300
    )


def assert_quiet(completed: subprocess.CompletedProcess[str]) -> None:
    """The demo's in-process runs log at INFO: no Dagster DEBUG events, and no stack trace for a hold."""
    output = completed.stdout + completed.stderr
    assert " - INFO - " in output, "the runs' own progress is still shown"
    assert " - DEBUG - " not in output
    assert "Stack Trace" not in output and "Traceback" not in output, output[-3000:]


def test_demo_once_syncs_both_demo_districts_into_the_embedded_default(tmp_path: Path) -> None:
    completed = run_command(["demo", "--once", "--workdir", str(tmp_path / "demo")], cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert_quiet(completed)

    table = [
        line.split()
        for line in completed.stdout.splitlines()
        if line.startswith(("riverside_usd", "lakeside_isd"))
    ]
    assert {(row[0], row[1]) for row in table} == {
        (d, r.name) for d in ("riverside_usd", "lakeside_isd") for r in RESOURCES
    }
    assert all(int(row[2]) > 0 for row in table), "every resource of both districts fetched rows"

    # The embedded SQLite file in the working folder holds both districts.
    engine = sa.create_engine(f"sqlite:///{tmp_path / '.roster_pipeline' / 'warehouse.sqlite'}")
    with engine.connect() as conn:
        districts = set(conn.execute(sa.text("SELECT DISTINCT district_id FROM enrollments")).scalars())
    assert districts == {"riverside_usd", "lakeside_isd"}

    # The registry it wrote names env vars, never secret values.
    registry = (tmp_path / "demo" / "districts.yaml").read_text()
    assert "client_secret_env: ROSTER_DEMO_RIVERSIDE_USD_SECRET" in registry
    assert "client_secret:" not in registry

    # A second run finds nothing changed.
    again = run_command(["demo", "--once", "--workdir", str(tmp_path / "demo")], cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    rows = [
        line.split()
        for line in again.stdout.splitlines()
        if line.startswith(("riverside_usd", "lakeside_isd"))
    ]
    assert rows and all(row[3:6] == ["0", "0", "0"] for row in rows), again.stdout


def test_demo_scenario_shows_the_whole_review_loop_headless(tmp_path: Path) -> None:
    """A wiped SIS is held and paused, Check Your Data lands in the outbox, approve publishes, Import Results follows."""
    import email
    from email import policy

    completed = run_command(
        ["demo", "--once", "--scenario", "wipe_enrollments", "--workdir", str(tmp_path / "demo")],
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert_quiet(completed)
    # the expected hold is told in one line each by Dagster and by the demo, no stack traces
    assert "held for review, nothing was published" in completed.stderr
    out = completed.stdout
    assert "check change_thresholds: FAILED" in out
    assert "riverside_usd: import held; published rows unchanged: True" in out
    assert "riverside_usd: paused=True" in out
    assert "review approve: import" in out and "district resumed" in out

    outbox = sorted((tmp_path / ".roster_pipeline" / "outbox").glob("*.eml"))
    kinds = [(p.name.split("_import-")[0].split("_", 1)[1], p.name.split("_import-")[1]) for p in outbox]
    assert ("riverside_usd_check_your_data", "3.eml") in kinds
    assert ("riverside_usd_import_results", "3.eml") in kinds
    check_your_data = next(p for p in outbox if "check_your_data" in p.name)
    message = email.message_from_bytes(check_your_data.read_bytes(), policy=policy.default)
    assert message["To"] == "roster-admin@riversideusd.example.org"
    assert "Check Your Data" in message["Subject"]
    assert {a.get_filename() for a in message.iter_attachments()} == {
        "rejected_rows.csv",
        "field_changes.csv",
    }


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    from roster_pipeline.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"roster-pipeline {version('roster-pipeline')}"


@pytest.mark.parametrize(
    "command", [["backfill", "--all"], ["review", "somewhere_usd", "approve", "--reviewer", "Jo"]]
)
def test_a_missing_registry_file_is_one_clear_line_and_exit_code_2(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from roster_pipeline.cli import main

    missing = tmp_path / "no-such-districts.yaml"
    code = main(
        [*command, "--districts-file", str(missing), "--database-url", f"sqlite:///{tmp_path / 'w.sqlite'}"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert (
        err.strip()
        == f"roster-pipeline {command[0]}: cannot read district registry {missing}: No such file or directory"
    )


def test_simulator_mutate_help_lists_every_mutation(capsys: pytest.CaptureFixture[str]) -> None:
    from roster_pipeline.cli import main
    from roster_pipeline.simulator.admin import DESCRIPTIONS, MUTATIONS

    with pytest.raises(SystemExit):
        main(["simulator", "mutate", "--help"])
    help_text = capsys.readouterr().out
    for name in MUTATIONS:
        assert f"  {name} " in help_text and DESCRIPTIONS[name] in help_text, name
