"""`roster-pipeline` console script.

Each sub-command lives in its own module, imported only when that command runs, so that starting the
simulator does not pay for importing Dagster and the warehouse.  A command module exposes
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "roster-pipeline"

# Commands that act on a deployment's registry and warehouse: run from the folder of `roster-pipeline demo`
# without a registry of their own, they use the demo's settings (roster_pipeline.cli.demo_home).
USES_DEMO_SETTINGS = frozenset({"review", "backfill"})

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulator": (
        "roster_pipeline.simulator.command",
        "run a OneRoster 1.1 SIS (Infinite Campus layout) on loopback",
    ),
    "demo": (
        "roster_pipeline.cli.demo",
        "start the simulator with two demo districts and the Dagster UI (or --once)",
    ),
    "bench": (
        "roster_pipeline.benchmark",
        "run the real Dagster sync on a simulated district vs the machine's limit, dlt and a naive script",
    ),
    "review": (
        "roster_pipeline.cli.review",
        "review a paused district's held import (approve, reject, reprocess) or undo its last import",
    ),
    "backfill": (
        "roster_pipeline.cli.backfill",
        "sync several districts, one run each (e.g. after rollover): --all or --districts a,b",
    ),
}


def installed_version() -> str:
    """The installed package's version (pyproject.toml), so it is never a second copy to keep in step."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roster-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            importlib.import_module(module_name).add_arguments(command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    module_name, _ = COMMANDS[args.command]
    if args.command in USES_DEMO_SETTINGS:
        from roster_pipeline.cli.demo_home import apply_demo_settings

        used = apply_demo_settings(os.environ)
        if used is not None:
            print(f"using the demo's settings from {used}", file=sys.stderr)
    try:
        return int(importlib.import_module(module_name).run(args) or 0)
    except Exception as exc:
        # A registry that is missing or wrong is the user's to fix: its message names the file and the
        # field, and a stack trace around it only hides that.  Imported here: `simulator` never loads it.
        from roster_pipeline.registry.districts import RegistryError

        if not isinstance(exc, RegistryError):
            raise
        print(f"roster-pipeline {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
