"""The demo's one findable folder: the command a Check Your Data email prints works when pasted there, and
the demo's settings reach only a shell without a registry of its own.

The README's own command lines (the demo.env + ``dagster job execute|materialize|launch`` block among
them) are run verbatim by test_readme_commands.py; this module keeps what is not a README line: the
review command as an email prints it, pasted in the folder the demo ran in.
"""

from __future__ import annotations

import email
import re
import subprocess
import sys
from email import policy
from pathlib import Path

import dagster as dg
import pytest

from roster_pipeline.cli.demo_home import apply_demo_settings, demo_home, write_settings
from roster_pipeline.notify.settings import NotifySettings
from roster_pipeline_tests.shell_helpers import clean_env, shell


def demo(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "roster_pipeline.cli", "demo", *args],
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def partition_runs(dagster_home: Path, partition: str) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        return [r for r in instance.get_runs() if r.tags.get("dagster/partition") == partition]


def test_the_review_command_a_check_your_data_email_prints_works_when_pasted(repository_root: Path) -> None:
    root = repository_root
    home = demo_home(root)
    process = demo(["--once", "--scenario", "wipe_enrollments", "--leave-held"], root)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out[-3000:]
    assert "riverside_usd: paused=True" in out

    # One outbox, at the printed absolute path; every email path it logs is absolute and inside it.
    assert [p for p in root.rglob("outbox") if p.is_dir()] == [home.outbox]
    listed = [line.strip() for line in out.split("emails written to the outbox:\n", 1)[1].splitlines()]
    assert listed and all(Path(p).is_absolute() and Path(p).parent == home.outbox for p in listed), out

    check_your_data = next(p for p in home.outbox.glob("*.eml") if "check_your_data" in p.name)
    message = email.message_from_bytes(check_your_data.read_bytes(), policy=policy.default)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    printed = re.search(r"roster-pipeline review riverside_usd approve[^\n`]*", body.get_content())
    assert printed, body.get_content()
    command = printed.group(0).strip()
    if "--reviewer" not in command:
        command += ' --reviewer "Jo Admin"'

    completed = shell(command, root)  # pasted in the folder the demo ran in, nothing exported
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "district resumed" in completed.stdout

    # The demo's syncs are on its stable instance, where the UI and `dagster job launch` look.
    assert len(partition_runs(home.dagster_home, "riverside_usd")) == 2


def test_demo_settings_fill_only_a_shell_without_a_registry_of_its_own(tmp_path: Path) -> None:
    write_settings(
        demo_home(tmp_path).settings_file,
        {
            "ROSTER_DISTRICTS_FILE": "/demo/districts.yaml",
            "DAGSTER_HOME": "/demo/home",
            "X_QUOTED": "a 'b' c",
        },
    )
    fresh: dict[str, str] = {"DAGSTER_HOME": "/mine"}
    assert apply_demo_settings(fresh, tmp_path) == demo_home(tmp_path).settings_file
    assert fresh == {
        "ROSTER_DISTRICTS_FILE": "/demo/districts.yaml",
        "DAGSTER_HOME": "/mine",
        "X_QUOTED": "a 'b' c",
    }

    production = {"ROSTER_DISTRICTS_FILE": "/etc/roster/districts.yaml"}
    assert apply_demo_settings(production, tmp_path) is None
    assert production == {"ROSTER_DISTRICTS_FILE": "/etc/roster/districts.yaml"}
    assert apply_demo_settings({}, tmp_path / "elsewhere") is None


def test_outbox_setting_is_absolute_whatever_it_was_given_as(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert NotifySettings.from_env({}).outbox_dir == tmp_path.resolve() / ".roster_pipeline" / "outbox"
    assert NotifySettings.from_env({"ROSTER_OUTBOX_DIR": "mail"}).outbox_dir == tmp_path.resolve() / "mail"
