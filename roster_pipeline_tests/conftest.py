"""Shared fixtures: real databases (SQLite file and a fresh Postgres database per test session).

Postgres tests skip only outside CI; with ``CI=true`` an unreachable server fails them, because the
brief requires the Postgres tests to run in CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

# The in-process SMTP server (aiosmtpd) fixtures: smtp_server, smtp_server_factory.
pytest_plugins = ["roster_pipeline_tests.smtp_server"]

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("ROSTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SHARED_REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "oneroster-reference"


def require_shared_reference() -> Path:
    """The OneRoster reference files live outside the project; skip politely in a user's clone."""
    if SHARED_REFERENCE.is_dir():
        return SHARED_REFERENCE
    if IN_CI:
        pytest.fail(f"CI=true but the OneRoster reference files are missing at {SHARED_REFERENCE}")
    pytest.skip(f"../shared/oneroster-reference not found at {SHARED_REFERENCE} (only present in the team's checkout)")


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    return require_shared_reference()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The maintenance URL of the Postgres server, after proving it answers."""
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        if IN_CI:
            pytest.fail(f"CI=true but Postgres is not reachable at {POSTGRES_URL}: {exc}")
        pytest.skip(f"Postgres not reachable at {POSTGRES_URL}: {exc}")
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture()
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A brand-new Postgres database for one test, dropped afterwards."""
    name = f"roster_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(postgres_server_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    """The embedded default: a SQLite file in the test's own folder."""
    return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on the embedded default and once on Postgres."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def fault_template():
    """The fault table's district: tiny (one school, ~30 users), generated once and copied per rig."""
    from roster_pipeline.simulator import generate_district

    return generate_district("tiny", seed=3)


@pytest.fixture()
def fault_rig(fault_template, tmp_path: Path, warehouse_url: str):
    """``fault_rig(**registry_settings)``: a simulator district + registry + warehouse for one fault row
    (on SQLite and on Postgres); see roster_pipeline_tests/fault_harness.py."""
    from roster_pipeline_tests.fault_harness import rig_factory

    yield from rig_factory(fault_template, tmp_path, warehouse_url)
