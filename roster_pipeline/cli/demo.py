"""`roster-pipeline demo`: two simulated districts, a registry for them, and the Dagster UI (or --once).

Everything runs on this machine: the OneRoster simulator on loopback, the warehouse at
``ROSTER_DATABASE_URL`` or the embedded SQLite file, and Dagster on the demo's own local instance.  All of
it lives in one stable folder, ``.roster_pipeline/`` under the directory the demo is started from
(``roster_pipeline.cli.demo_home``), printed with absolute paths, so a second shell (``dagster job launch``,
``roster-pipeline review``) finds the same runs, registry, warehouse and outbox.  The demo's client secrets
are generated per run and handed to Dagster through environment variables, the same way a real district's
secrets are; the only file holding them is the user-only ``.roster_pipeline/demo.env``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from roster_pipeline.cli.demo_home import DemoHome, demo_home, write_settings
from roster_pipeline.registry.districts import ENV_FILE_VARIABLE
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district
from roster_pipeline.simulator.generate import Size
from roster_pipeline.warehouse.engine import ENV_DATABASE_URL, resolve_url

if TYPE_CHECKING:  # heavy: imported where used, so that the demo's --help stays quick
    import dagster as dg

    from roster_pipeline.registry.districts import Registry
    from roster_pipeline.warehouse import Warehouse

# The running simulator's root URL, exported in demo.env so that a second shell can drive it
# (`roster-pipeline simulator mutate --url "$ROSTER_DEMO_SIMULATOR_URL" ...`) without copying a port.
SIMULATOR_URL_ENV = "ROSTER_DEMO_SIMULATOR_URL"


@dataclass(frozen=True)
class DemoDistrict:
    id: str
    name: str
    size: Size
    seed: int
    timezone: str

    @property
    def app_name(self) -> str:
        return self.id.replace("_", "")

    @property
    def key_env(self) -> str:
        return f"ROSTER_DEMO_{self.id.upper()}_KEY"

    @property
    def secret_env(self) -> str:
        return f"ROSTER_DEMO_{self.id.upper()}_SECRET"


DEMO_DISTRICTS: tuple[DemoDistrict, ...] = (
    DemoDistrict(
        "riverside_usd", "Riverside Unified School District (demo)", "small", 1, "America/Los_Angeles"
    ),
    DemoDistrict("lakeside_isd", "Lakeside Independent School District (demo)", "tiny", 2, "America/Chicago"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--once", action="store_true", help="sync both demo districts headless, print counts, exit"
    )
    parser.add_argument(
        "--scenario",
        choices=sorted(SCENARIOS),
        help="with --once: after the first sync, change the first demo district in the simulator and sync it "
        "again, to show what the pipeline does (wipe_enrollments: the SIS loses 90%% of its enrollments)",
    )
    parser.add_argument(
        "--leave-held",
        action="store_true",
        help="with --scenario: leave a held import for you to review with the command its Check Your Data "
        "email prints, instead of approving it",
    )
    parser.add_argument(
        "--no-ui",
        action="store_true",
        help="keep the simulator up for commands from another shell, without the Dagster UI",
    )
    parser.add_argument(
        "--workdir", default=".roster_pipeline/demo", help="where the demo registry is written"
    )
    parser.add_argument("--simulator-port", type=int, default=0, help="simulator port (0 = a free one)")
    parser.add_argument("--dagster-port", type=int, default=3000, help="port of the Dagster UI")


def write_registry(server: SimulatorServer, workdir: Path, environ: MutableMapping[str, str]) -> Path:
    """Write the demo registry and put the demo credentials and the simulator's URL into ``environ``
    (names only in the file)."""
    districts = []
    environ[SIMULATOR_URL_ENV] = server.url
    for d in DEMO_DISTRICTS:
        tenant = server.tenant(d.app_name)
        environ[d.key_env] = tenant.client_id
        environ[d.secret_env] = tenant.client_secret
        districts.append(
            {
                "id": d.id,
                "name": d.name,
                "sis": "infinite_campus",
                "api_host": server.url,
                "app_name": d.app_name,
                "client_id_env": d.key_env,
                "client_secret_env": d.secret_env,
                "page_size": 1000,
                "timezone": d.timezone,
                "admin_emails": [f"roster-admin@{d.app_name}.example.org"],
                "student_devices": "mixed",
            }
        )
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "districts.yaml"
    header = "# Written by `roster-pipeline demo`; districts served by the local OneRoster simulator.\n"
    path.write_text(header + yaml.safe_dump({"districts": districts}, sort_keys=False))
    return path


def start_simulator(port: int) -> SimulatorServer:
    tenants = [
        Tenant(
            d.app_name,
            f"{d.app_name}-client",
            secrets.token_urlsafe(24),
            generate_district(d.size, d.seed, name=d.name),
        )
        for d in DEMO_DISTRICTS
    ]
    server = SimulatorServer(tenants, port=port)
    server.start()
    return server


# scenario name -> (simulator mutation, its parameters, what the demo expects the next sync to do)
SCENARIOS: dict[str, tuple[str, dict[str, object], str]] = {
    "wipe_enrollments": ("wipe_enrollments", {"percent": 90, "seed": 1}, "held"),
    "change_users": ("change_users", {"percent": 3, "seed": 1}, "published"),
}


def sync_once(
    job: dg.JobDefinition, instance: dg.DagsterInstance, district_id: str
) -> tuple[bool, list[tuple[str, str, dict[str, object]]], str]:
    """One district through the real Dagster job; returns (published?, table rows, check summary)."""
    from roster_pipeline.cli.demo_logging import RUN_CONFIG
    from roster_pipeline.records.catalogue import RESOURCES

    # Full pulls: the demo shows what a whole snapshot does (a delta never infers deletions).
    result = job.execute_in_process(
        partition_key=district_id,
        instance=instance,
        raise_on_error=False,
        tags={"roster/sync_mode": "full"},
        run_config=RUN_CONFIG,
    )
    rows: list[tuple[str, str, dict[str, object]]] = []
    for resource in RESOURCES:
        events = result.asset_materializations_for_node(resource.name)
        metadata: dict[str, object] = {k: v.value for k, v in events[-1].metadata.items()} if events else {}
        rows.append((district_id, resource.name, metadata))
    checks = [
        f"  check {e.check_name}: {'passed' if e.passed else 'FAILED'}"
        + ("" if e.passed else f" ({e.description})")
        for e in result.get_asset_check_evaluations()
    ]
    published = bool(result.asset_materializations_for_node("published_roster"))
    return published, rows, "\n".join(checks)


def run_once(
    registry_path: Path, server: SimulatorServer, scenario: str | None, leave_held: bool = False
) -> int:
    """Materialize every demo district through the real Dagster job and print per-resource counts."""
    import dagster as dg

    from roster_pipeline.control.review import approve
    from roster_pipeline.control.store import get_state
    from roster_pipeline.definitions import build_definitions
    from roster_pipeline.registry.districts import load_registry
    from roster_pipeline.simulator.admin import apply_mutation
    from roster_pipeline.warehouse import Warehouse

    registry = load_registry(registry_path)
    from roster_pipeline.cli.demo_logging import demo_console_logger

    # INFO and up, a hold in one line (demo_logging)
    job = (
        build_definitions(registry)
        .resolve_job_def("sync_district")
        .with_logger_defs({"console": demo_console_logger})
    )
    rows: list[tuple[str, str, dict[str, object]]] = []
    failed = False
    with dg.DagsterInstance.get() as instance:  # the demo's stable instance (DAGSTER_HOME), seen by the UI
        for district_id in registry.districts:
            published, district_rows, checks = sync_once(job, instance, district_id)
            rows += district_rows
            if not published:
                failed = True
                print(f"{district_id}: import NOT published\n{checks}", file=sys.stderr)
        print_table(rows)
        if scenario is None:
            return 1 if failed else 0

        district = DEMO_DISTRICTS[0]
        kind, params, expected = SCENARIOS[scenario]
        warehouse = Warehouse()
        notify = ControlLoop(warehouse, registry)
        notify.tick()  # the first imports' Import Results emails
        before = warehouse.current_counts(district.id)
        summary = apply_mutation(server.tenant(district.app_name).district, kind, dict(params))
        changed = {
            name: {k: n for k, n in counts.items() if n} for name, counts in summary["changes"].items()
        }
        changed = {name: counts for name, counts in changed.items() if counts}
        print(f"\nscenario {scenario}: the simulator applied {kind} to {district.id}: {changed}")
        published, district_rows, checks = sync_once(job, instance, district.id)
        print_table(district_rows)
        print(checks)
        after = warehouse.current_counts(district.id)
        outcome = "published" if published else "held"
        print(f"{district.id}: import {outcome}; published rows unchanged: {before == after}")
        if outcome != expected or (outcome == "held" and before != after):
            print(f"scenario {scenario}: expected the import to be {expected}", file=sys.stderr)
            return 1
        notify.tick()  # what the district_control sensor does: pause + Check Your Data / Import Results
        if outcome == "held":
            state = get_state(warehouse.engine, district.id)
            print(f"{district.id}: paused={state.paused} ({state.reason})")
        if outcome == "held" and leave_held:
            print(
                f"{district.id}: left held for your review: from {Path.cwd()}, run the command its "
                "Check Your Data email prints"
            )
        elif outcome == "held":
            result = approve(
                warehouse,
                district.id,
                reviewer="demo data engineer",
                note="demo: approved on purpose",
                excluded_resources=registry.get(district.id).excluded_resources(),
            )
            print(f"review approve: {result.outcome}")
            notify.tick()
        print("emails written to the outbox:")
        for path in notify.outbox_files():
            print(f"  {path.resolve()}")
        return 0


class ControlLoop:
    """The district_control sensor's work, run in-process for the headless demo (no daemon needed)."""

    def __init__(self, warehouse: Warehouse, registry: Registry) -> None:
        from roster_pipeline.control.store import create_control_schema
        from roster_pipeline.defs.sensors import smtp_sender_factory
        from roster_pipeline.notify.settings import NotifySettings

        self.warehouse, self.registry = warehouse, registry
        self.settings = NotifySettings.from_env()
        self.sender = smtp_sender_factory(self.settings)
        self.floor: int | None = None
        self.seen: set[Path] = set(self.settings.outbox_dir.glob("*.eml"))
        create_control_schema(warehouse.engine)

    def tick(self) -> None:
        from roster_pipeline.control.tick import process_imports

        report = process_imports(self.warehouse, self.registry, self.sender, self.settings, self.floor)
        self.floor = report.floor

    def outbox_files(self) -> list[Path]:
        return sorted(set(self.settings.outbox_dir.glob("*.eml")) - self.seen)


def print_table(rows: list[tuple[str, str, dict[str, object]]]) -> None:
    columns = (
        "rows_fetched",
        "added",
        "updated",
        "deleted",
        "unchanged",
        "tobedeleted",
        "pages",
        "duration_seconds",
    )
    header = ("district", "resource", *columns)
    table = [header] + [(d, r, *(str(m.get(c, "")) for c in columns)) for d, r, m in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for n, row in enumerate(table):
        print(
            "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def use_demo_home(home: DemoHome, registry_path: Path, environ: MutableMapping[str, str]) -> dict[str, str]:
    """Point this process (and the Dagster it starts) at the demo folder; return the settings to share.

    The warehouse URL and the outbox are pinned as absolute paths, so every process (the UI's runs, the
    daemon's sensor, a second shell) uses the same SQLite file and the same outbox whatever its working
    folder.  DAGSTER_HOME is the demo's own instance: with it set, Dagster never reads a ``dagster.yaml``
    from the working folder (the repository's is the production instance, on Postgres).
    """
    environ[ENV_FILE_VARIABLE] = str(registry_path)
    environ[ENV_DATABASE_URL] = resolve_url(environ.get(ENV_DATABASE_URL) or None)
    environ["ROSTER_OUTBOX_DIR"] = str(
        Path(environ.get("ROSTER_OUTBOX_DIR", "").strip() or home.outbox).resolve()
    )
    environ["DAGSTER_HOME"] = str(home.prepare_dagster_home())
    names = ["DAGSTER_HOME", ENV_FILE_VARIABLE, ENV_DATABASE_URL, "ROSTER_OUTBOX_DIR"]
    names += [name for d in DEMO_DISTRICTS for name in (d.key_env, d.secret_env)]
    if SIMULATOR_URL_ENV in environ:
        names.append(SIMULATOR_URL_ENV)
    settings = {name: environ[name] for name in names}
    write_settings(home.settings_file, settings)
    return settings


def wait_for_interrupt() -> int:
    """--no-ui: keep the simulator serving until Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


#: How long ``dagster dev`` gets to stop its webserver, daemon and code servers before it is killed.
UI_STOP_SECONDS = 60


def run_until_stopped(command: list[str], env: dict[str, str], cwd: Path) -> int:
    """Run ``dagster dev`` until it ends, and never leave it behind when the demo is stopped.

    Ctrl-C reaches the whole foreground process group, ``dagster dev`` included, so then the demo only
    waits for it. A SIGTERM (a service manager, ``kill``, a closed terminal session) reaches the demo
    alone: it used to end the demo and leave ``dagster dev`` and its webserver and daemon running. So the
    demo passes SIGTERM on (``dagster dev`` treats it as Ctrl-C and stops its children) and waits.
    """
    child = subprocess.Popen(command, env=env, cwd=cwd)

    def pass_on(signum: int, _frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, pass_on)
    try:
        try:
            return child.wait()
        except KeyboardInterrupt:
            try:
                child.wait(timeout=UI_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child.poll() is None:  # the demo itself failed: take dagster dev down with it
            child.terminate()
            try:
                child.wait(timeout=UI_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()


def run(args: argparse.Namespace) -> int:
    home = demo_home()
    workdir = Path(args.workdir).resolve()
    server = start_simulator(args.simulator_port)
    try:
        registry_path = write_registry(server, workdir, os.environ)
        settings = use_demo_home(home, registry_path, os.environ)
        where = (
            settings[ENV_DATABASE_URL]
            if settings[ENV_DATABASE_URL].startswith("sqlite")
            else "ROSTER_DATABASE_URL"
        )
        print(f"OneRoster simulator: {server.url} ({len(DEMO_DISTRICTS)} districts)", flush=True)
        print(f"district registry:   {registry_path}", flush=True)
        print(f"warehouse:           {where}", flush=True)
        print(f"Dagster instance:    {settings['DAGSTER_HOME']}", flush=True)
        print(f"email outbox:        {settings['ROSTER_OUTBOX_DIR']}", flush=True)
        print(
            f"demo settings:       {home.settings_file} (another shell: source it; `roster-pipeline review` "
            f"run from {home.root.parent} reads it itself)",
            flush=True,
        )
        if args.once:
            return run_once(registry_path, server, args.scenario, args.leave_held)
        if args.no_ui:
            print("serving the simulator without the UI (Ctrl-C stops the demo)", flush=True)
            return wait_for_interrupt()
        workspace = workdir / "workspace.yaml"
        workspace.write_text(
            "load_from:\n  - python_module:\n      module_name: roster_pipeline.definitions\n"
            "      location_name: roster_pipeline\n"
        )
        print(
            f"Dagster UI:          http://127.0.0.1:{args.dagster_port} (Ctrl-C stops the demo)", flush=True
        )
        command = ["dagster", "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(args.dagster_port)]
        return run_until_stopped(command, os.environ.copy(), workdir)
    finally:
        server.stop()
