"""The demo's one stable folder, ``.roster_pipeline/`` under the directory the demo is started from.

Why it exists: the demo's Dagster runs, its warehouse, its emails and its registry must be findable
from a second shell, so the Dagster UI, ``dagster job execute|launch`` and ``roster-pipeline review``
all see the same runs and districts.  Everything therefore lives at fixed, printed, absolute paths:

==========================================  ===================================================
``.roster_pipeline/dagster_home/``          the demo's Dagster instance (``DAGSTER_HOME``; local
                                            SQLite storage, never the production ``dagster.yaml``)
``.roster_pipeline/demo/districts.yaml``    the demo registry (``ROSTER_DISTRICTS_FILE``)
``.roster_pipeline/warehouse.sqlite``       the embedded warehouse (unless ``ROSTER_DATABASE_URL``)
``.roster_pipeline/outbox/``                every email the demo sends (``ROSTER_OUTBOX_DIR``)
``.roster_pipeline/demo.env``               all of the above as ``export`` lines, plus the demo
                                            simulator's URL and per-run credentials (file mode 0600)
==========================================  ===================================================

``source .roster_pipeline/demo.env`` gives any shell the demo's settings; ``roster-pipeline review`` and
``backfill`` read the file themselves when run from that directory without a registry of their own, so
the command a Check Your Data email prints works when pasted.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from roster_pipeline.registry.districts import ENV_FILE_VARIABLE

STATE_DIR_NAME = ".roster_pipeline"

# A local instance: Dagster's default SQLite storage inside DAGSTER_HOME. Written because Dagster reads
# $DAGSTER_HOME/dagster.yaml, and so that the folder is recognisably the demo's.
LOCAL_INSTANCE_YAML = """\
# Written by `roster-pipeline demo`: the demo's local Dagster instance. Runs, events and schedules are
# kept in SQLite files in this folder. The production instance is the repository's top-level dagster.yaml.
telemetry:
  enabled: false
"""


@dataclass(frozen=True)
class DemoHome:
    """The absolute paths of one demo folder."""

    root: Path

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def settings_file(self) -> Path:
        return self.root / "demo.env"

    def prepare_dagster_home(self) -> Path:
        """Create the instance folder (with its dagster.yaml) once; later demos reuse its runs."""
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        config = self.dagster_home / "dagster.yaml"
        if not config.exists():
            config.write_text(LOCAL_INSTANCE_YAML)
        return self.dagster_home


def demo_home(cwd: Path | None = None) -> DemoHome:
    return DemoHome((cwd or Path.cwd()).resolve() / STATE_DIR_NAME)


def write_settings(path: Path, values: Mapping[str, str]) -> None:
    """Write ``export NAME='value'`` lines, readable only by the user (they hold the demo credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Written by `roster-pipeline demo`. In another shell: source this file (see docs/local-use.md)."
    ]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)


def read_settings(path: Path) -> dict[str, str]:
    """Parse what write_settings wrote (``export NAME=value`` lines, shell-quoted)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            values[name] = value
    return values


def apply_demo_settings(environ: MutableMapping[str, str], cwd: Path | None = None) -> Path | None:
    """Fill unset variables from ``./.roster_pipeline/demo.env``, when this shell has no registry of its own.

    A shell with ``ROSTER_DISTRICTS_FILE`` set is configured for something else (production, a test), and
    is left exactly as it is.  Returns the file used, or None.
    """
    if environ.get(ENV_FILE_VARIABLE, "").strip():
        return None
    path = demo_home(cwd).settings_file
    if not path.is_file():
        return None
    for name, value in read_settings(path).items():
        environ.setdefault(name, value)
    return path
