"""Run dlt (rest_api source → postgres destination) on the bench district, from the benchmark's own virtualenv.

dlt is never a dependency of roster_pipeline: it lives in a virtualenv of its own (``--dlt-venv``,
created with ``python3 -m venv`` and ``pip install "dlt[postgres]"`` on ``--with-dlt``), and the dlt
script (``dlt_load.py``, a data file of this package) runs under that venv's python as a measured
child process.  Without the venv the benchmark says "dlt: not installed" and reports nan.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from roster_pipeline.benchmark.measure import Usage, run_measured
from roster_pipeline.benchmark.rig import BenchDistrict, child_env
from roster_pipeline.warehouse.databases import libpq_url, url_password

DEFAULT_VENV = Path.home() / ".cache" / "roster_pipeline" / "dlt-venv"
SCRIPT = Path(__file__).with_name("dlt_load.py")
DATASET = "bench_dlt"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def dlt_version(venv: Path) -> str | None:
    """The installed dlt's version in that venv, or None when there is no venv or no dlt in it."""
    python = venv_python(venv)
    if not python.exists():
        return None
    completed = subprocess.run(
        [str(python), "-c", "import dlt; print(dlt.__version__)"], capture_output=True, text=True, check=False
    )
    return completed.stdout.strip() if completed.returncode == 0 else None


def ensure_venv(venv: Path) -> str | None:
    """Create the venv and pip install dlt[postgres] into it if dlt is missing; the version, or None on failure.

    pip itself is the check that the package index is reachable: its failure is printed, not raised,
    so the rest of the benchmark still reports.
    """
    version = dlt_version(venv)
    if version:
        return version
    print(f"dlt: creating {venv} and installing dlt[postgres] (once) ...", flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv_python(venv)), "-m", "pip", "install", "-q", "dlt[postgres]"],
    ]
    for step in steps:
        completed = subprocess.run(step, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            print(f"dlt: {' '.join(step[:3])} … failed: {completed.stderr.strip()[-800:]}", flush=True)
            return None
    return dlt_version(venv)


def run_dlt(
    district: BenchDistrict, database_url: str, venv: Path, workdir: Path
) -> tuple[Usage, dict[str, int]]:
    """Load the district with dlt; (usage, rows per resource table)."""
    pipelines_dir = workdir / "dlt_pipelines"
    command = [
        str(venv_python(venv)),
        str(SCRIPT),
        district.base_url,
        district.token_url,
        str(district.page_size),
        str(district.concurrency),
        libpq_url(database_url),
        DATASET,
        str(pipelines_dir),
    ]
    log = workdir / "dlt.log"
    # dlt insists on a password even where the server trusts local connections (which ignore it).
    password = url_password(database_url) or "unused-under-trust-auth"
    env = child_env(
        {
            **district.credentials_env(),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "DESTINATION__POSTGRES__CREDENTIALS__PASSWORD": str(password),
        }
    )
    usage = run_measured(
        command,
        env=env,
        cwd=workdir,
        log_path=log,
        simulator_pid=district.simulator_pid,
    )
    if usage.returncode != 0:
        raise RuntimeError(f"dlt exited with {usage.returncode}; its log: {log}\n{tail(log)}")
    return usage, json.loads(last_line(log))["records"]


def last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "{}"


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:]
