"""The console command's own behaviour: --version, a missing registry file, the mutation help.

What `roster-pipeline demo --once` prints, writes and sends is checked on the README walkthrough's own runs of it
(test_readme_commands.py), not by running the demo again; `roster-pipeline bench`: test_bench.py."""

from __future__ import annotations

from pathlib import Path

import pytest


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
