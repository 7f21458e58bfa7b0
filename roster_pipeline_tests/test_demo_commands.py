"""The demo's settings reach only a shell without a registry of its own, and its outbox is absolute.

The README's own command lines are run verbatim by test_readme_commands.py, which also pastes the
review command a Check Your Data email prints in the folder the demo ran in; this module keeps what
needs no demo run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from roster_pipeline.cli.demo_home import apply_demo_settings, demo_home, write_settings
from roster_pipeline.notify.settings import NotifySettings


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
