"""`roster-pipeline bench`: the benchmark, one module per job.

- ``rig``         the simulated district, credentials by env var name, the warehouse database, child envs
- ``measure``     wall/CPU/peak RSS of a child process (``os.wait4``) and the simulator's CPU meanwhile
- ``limit``       the machine's limit loader (same pages, orjson, COPY into unlogged tables)
- ``dagster_run`` the real ``sync_district`` job as a child process, and its event log
- ``naive``       the naive script (page size 100, sequential, stdlib json, pandas to_sql)
- ``dlt_run``     dlt in its own virtualenv (``dlt_load.py`` is the script it runs; never imported here)
- ``report``      figures, targets, the final ``key=value`` line
- ``command``     argument parsing and the phases in order

Importing this package imports nothing heavy: the loaders run as ``python -m`` children.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from roster_pipeline.benchmark.command import add_arguments as add

    add(parser)


def run(args: argparse.Namespace) -> int:
    from roster_pipeline.benchmark.command import run as run_command

    return run_command(args)
