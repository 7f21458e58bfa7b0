"""Run the real Dagster job ``sync_district`` for the bench district as a child process, and read its event log.

The child is what an operator runs (``dagster job execute`` on the project's code location), with a
temporary DAGSTER_HOME holding a local SQLite instance (the project's production dagster.yaml needs
Postgres storage settings, and a benchmark must not write into it), a generated registry file naming
the simulator and the env var NAMES of the credentials, and the warehouse URL.  Its wall time, CPU and
peak RSS are measured by ``os.wait4``; per-stage seconds come from the assets' materialization metadata
(``stage_seconds``), step durations from STEP_START/STEP_SUCCESS events of the same run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from roster_pipeline.benchmark.measure import Usage, run_measured
from roster_pipeline.benchmark.rig import BenchDistrict, child_env
from roster_pipeline.pipeline.run_tags import SYNC_MODE_TAG

JOB = "sync_district"
PHASE_TAG = "roster/bench_phase"
RESOURCE_STAGES = ("fetch", "parse", "validate", "load")
SNAPSHOT_STAGES = ("classify", "check")
PUBLISH_STAGES = ("publish",)
STAGES = (*RESOURCE_STAGES, *SNAPSHOT_STAGES, *PUBLISH_STAGES)


@dataclass
class JobRun:
    """One measured run of the job: process figures plus what its event log says."""

    label: str
    mode: str
    usage: Usage
    run_id: str | None = None
    status: str = "unknown"
    # asset name -> {stage: seconds}, as the assets recorded them
    stage_seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)  # step key -> STEP_START..STEP_SUCCESS
    rows_fetched: dict[str, int] = field(default_factory=dict)
    log_path: Path | None = None

    @property
    def wall_s(self) -> float:
        return self.usage.wall_s

    def stage_total(self, stage: str) -> float | None:
        """A stage's seconds summed over every asset that recorded it; None when none did."""
        found = [stages[stage] for stages in self.stage_seconds.values() if stage in stages]
        return sum(found) if found else None

    @property
    def steps_total(self) -> float:
        return sum(self.step_seconds.values())

    @property
    def overhead_s(self) -> float:
        """What is not inside a step: interpreter start, imports, loading definitions, run bookkeeping."""
        return self.wall_s - self.steps_total


class DagsterBench:
    """A temporary Dagster home + registry + warehouse for the bench districts; runs the job on request."""

    def __init__(self, workdir: Path, database_url: str) -> None:
        self.workdir = workdir
        self.home = workdir / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        # A local (SQLite) instance: the project's dagster.yaml is for production and needs DAGSTER_PG_*.
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        self.registry_path = workdir / "districts.yaml"
        self.database_url = database_url
        self.districts: dict[str, BenchDistrict] = {}

    def add_district(self, district: BenchDistrict) -> None:
        """(Re)write the registry so the code location's partitions include this district."""
        self.districts[district.district_id] = district
        entries = [d.registry_entry() for d in self.districts.values()]
        self.registry_path.write_text(yaml.safe_dump({"districts": entries}, sort_keys=False))

    def run(self, district: BenchDistrict, label: str, mode: str = "full") -> JobRun:
        tags = {"dagster/partition": district.district_id, SYNC_MODE_TAG: mode, PHASE_TAG: label}
        command = [
            sys.executable,
            "-m",
            "dagster",
            "job",
            "execute",
            "-m",
            "roster_pipeline.definitions",
            "-j",
            JOB,
            "--tags",
            json.dumps(tags),
        ]
        env = child_env(
            {
                **district.credentials_env(),
                "ROSTER_DISTRICTS_FILE": str(self.registry_path),
                "ROSTER_DATABASE_URL": self.database_url,
                "DAGSTER_HOME": str(self.home),
            }
        )
        log_path = self.workdir / f"job-{label}.log"
        usage = run_measured(
            command, env=env, cwd=self.workdir, log_path=log_path, simulator_pid=district.simulator_pid
        )
        run = JobRun(label=label, mode=mode, usage=usage, log_path=log_path)
        read_event_log(self.home, run)
        if usage.returncode != 0 or run.status != "SUCCESS":
            text = log_path.read_text(errors="replace")
            raise RuntimeError(
                f"the {label} run of {JOB} failed (exit {usage.returncode}, status {run.status}); "
                f"log {log_path}:\n{text[-4000:]}"
            )
        return run


def read_event_log(home: Path, run: JobRun) -> None:
    """Fill ``run`` from the instance's event log: the run tagged with its label, its steps and metadata."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_runs(dg.RunsFilter(tags={PHASE_TAG: run.label}), limit=1)
        if not records:
            return
        dagster_run = records[0]
        run.run_id, run.status = dagster_run.run_id, dagster_run.status.value
        entries = instance.all_logs(dagster_run.run_id)
    run.step_seconds = step_durations(entries)
    for entry in entries:
        materialization = entry.asset_materialization
        if materialization is None:
            continue
        asset = materialization.asset_key.to_user_string()
        metadata = materialization.metadata
        stages = metadata_dict(metadata.get("stage_seconds"))
        if stages:
            run.stage_seconds[asset] = {
                str(k): float(v) for k, v in stages.items() if isinstance(v, (int, float))
            }
        fetched = metadata.get("rows_fetched")  # an int when recorded, so Dagster stores an IntMetadataValue
        if isinstance(fetched, dg.IntMetadataValue) and fetched.value is not None:
            run.rows_fetched[asset] = fetched.value


def step_durations(entries: Iterable[Any]) -> dict[str, float]:
    """step key -> seconds from its STEP_START to its STEP_SUCCESS (or STEP_FAILURE)."""
    started: dict[str, float] = {}
    durations: dict[str, float] = {}
    for entry in entries:
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        kind = event.event_type_value
        if kind == "STEP_START":
            started[entry.step_key] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and entry.step_key in started:
            durations[entry.step_key] = entry.timestamp - started[entry.step_key]
    return durations


def metadata_dict(value: Any) -> dict[str, Any] | None:
    """A JSON metadata entry as a dict, whether recorded as MetadataValue.json, a dict or JSON text."""
    if value is None:
        return None
    data = getattr(value, "data", None)
    if data is None:
        data = getattr(value, "value", value)
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    return data if isinstance(data, dict) else None
