"""Shared fixtures: real databases (SQLite file and a fresh Postgres database per test session).

Postgres tests skip only outside CI; with ``CI=true`` an unreachable server fails them, because the
brief requires the Postgres tests to run in CI.
"""

from __future__ import annotations

import gc
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster._core.storage.defs_state.base import set_defs_state_storage

from roster_pipeline.warehouse import Warehouse
from roster_pipeline_tests.databases import BOTH, IN_CI, POSTGRES_URL, one_database, postgres_problem
from roster_pipeline_tests.paths import PROJECT_ROOT, SHARED_REFERENCE

# The in-process SMTP server (aiosmtpd) fixtures: smtp_server, smtp_server_factory.
pytest_plugins = ["roster_pipeline_tests.smtp_server"]


def require_shared_reference() -> Path:
    """The OneRoster reference files live outside the project; skip politely in a user's clone."""
    if SHARED_REFERENCE.is_dir():
        return SHARED_REFERENCE
    if IN_CI:
        pytest.fail(f"CI=true but the OneRoster reference files are missing at {SHARED_REFERENCE}")
    pytest.skip(
        f"../shared/oneroster-reference not found at {SHARED_REFERENCE} (only present in the team's checkout)"
    )


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    return require_shared_reference()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The maintenance URL of the Postgres server, after proving it answers."""
    problem = postgres_problem()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI=true but Postgres is not reachable at {POSTGRES_URL}: {problem}")
        pytest.skip(f"Postgres not reachable at {POSTGRES_URL}: {problem}")
    return POSTGRES_URL


@contextmanager
def postgres_databases(server_url: str) -> Iterator[Callable[[], str]]:
    """Creates brand-new Postgres databases on request, all dropped (connections or not) on exit."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    names: list[str] = []

    def create() -> str:
        name = f"roster_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield create
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def new_postgres_database(postgres_server_url: str) -> Iterator[Callable[[], str]]:
    """Creates brand-new Postgres databases on request (one test may need several), all dropped afterwards."""
    with postgres_databases(postgres_server_url) as create:
        yield create


@pytest.fixture(scope="module")
def module_postgres_database(postgres_server_url: str) -> Iterator[Callable[[], str]]:
    """``new_postgres_database`` for a module's shared set-up (e.g. one set of Dagster processes that all
    its tests use): the databases are dropped after the module's last test."""
    with postgres_databases(postgres_server_url) as create:
        yield create


@pytest.fixture()
def postgres_url(new_postgres_database: Callable[[], str]) -> str:
    """A brand-new Postgres database for one test, dropped afterwards."""
    return new_postgres_database()


@dataclass(frozen=True)
class ProductionDagsterHome:
    """A DAGSTER_HOME holding the project's production dagster.yaml, its storage in a fresh database."""

    path: Path
    storage_url: str  # the database behind DAGSTER_PG_* (SQLAlchemy URL, for inspecting it)
    env: dict[str, str]  # DAGSTER_HOME and DAGSTER_PG_*, as an operator exports them


def make_production_home(folder: Path, storage_url: str) -> ProductionDagsterHome:
    """``folder`` (created) as a DAGSTER_HOME holding the shipped dagster.yaml, unchanged, and the DAGSTER_PG_*
    variables that point it at the database ``storage_url``."""
    url = sa.engine.make_url(storage_url)
    folder.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", folder / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(folder),
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database or "",
    }
    return ProductionDagsterHome(folder, storage_url, env)


@pytest.fixture()
def production_dagster_home(
    new_postgres_database: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ProductionDagsterHome:
    """The shipped dagster.yaml, unchanged, pointed at a new database through the DAGSTER_PG_* variables.

    The variables are also set in this process (and so inherited by subprocesses such as dagster-daemon).
    """
    home = make_production_home(tmp_path / "dagster_home", new_postgres_database())
    for key, value in home.env.items():
        monkeypatch.setenv(key, value)
    return home


@pytest.fixture(scope="module")
def module_production_dagster_home(
    module_postgres_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> ProductionDagsterHome:
    """``production_dagster_home`` shared by a module's tests. Nothing is set in this process's environment
    (a module-scoped fixture has no monkeypatch): pass ``.env`` to the processes that need it."""
    return make_production_home(
        tmp_path_factory.mktemp("production") / "dagster_home", module_postgres_database()
    )


@pytest.fixture()
def repository_root(tmp_path: Path) -> Path:
    """A folder laid out like the repository root (production dagster.yaml, workspace.yaml), for commands
    that a user runs from a clone's root; see roster_pipeline_tests/shell_helpers.py."""
    from roster_pipeline_tests.shell_helpers import copy_repository_layout

    return copy_repository_layout(tmp_path / "repository")


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    """The embedded default: a SQLite file in the test's own folder."""
    return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"


# Modules whose tests take a minute or more each (or share a set-up that does), started first so that
# the suite's workers finish together instead of waiting on one of these at the end.
LONGEST_FIRST = (
    "test_readme_commands.py",
    "test_production_e2e.py",
    "test_load_daemon.py",
    "test_run_worker_kill.py",
    "test_rollover_e2e.py",
    "test_production_instance.py",
    "test_browser_ui.py",
    "test_commands.py",
)


#: Allocations between two young-generation garbage collections in the test processes (Python: 700).
GC_YOUNG_THRESHOLD = 100_000


def pytest_configure(config: pytest.Config) -> None:
    """Fewer cyclic garbage collections in the test processes: a test allocates millions of short-lived
    objects (DataFrames, SQL statements, Dagster events), and at Python's default every 700 allocations
    start a collection that walks every young object; measured on the fault table and the review tests,
    8-15% of the workers' CPU. Memory stays bounded: the collections still run, less often."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported (Dagster, pandas, the package, the test modules) lives until the worker
    exits: moved out of the collector's sight, so no full collection walks it again."""
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first (a stable sort: every other test keeps its place, the same in every worker)."""
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``warehouse_url`` on both databases, or on one for an ``end_to_end`` test (see databases.py)."""
    if "warehouse_url" not in metafunc.fixturenames:
        return
    if any("warehouse_url" in m.args[0] for m in metafunc.definition.iter_markers("parametrize")):
        return  # the test chooses its databases itself (the fault table)
    end_to_end = metafunc.definition.get_closest_marker("end_to_end") is not None
    metafunc.parametrize("warehouse_url", one_database() if end_to_end else BOTH, indirect=True)


@pytest.fixture()
def warehouse_url(request: pytest.FixtureRequest) -> str:
    """A fresh warehouse database: the embedded default's SQLite file or a new Postgres database."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture()
def wh(warehouse_url: str) -> Iterator[Warehouse]:
    """A warehouse with its schema, on SQLite and on Postgres (``warehouse_url``)."""
    warehouse = Warehouse(warehouse_url)
    warehouse.create_schema()
    yield warehouse
    warehouse.dispose()


@pytest.fixture(scope="module")
def alpha_template(request: pytest.FixtureRequest):
    """The end-to-end sync tests' district "alpha": tiny (generated once per module, deep-copied per test),
    or as large as a test asks with ``@pytest.mark.parametrize("alpha_template", ["small"], indirect=True)``
    where size is what it tests."""
    from roster_pipeline.simulator import generate_district

    return generate_district(getattr(request, "param", "tiny"), seed=11)


@pytest.fixture(scope="session")
def fault_template():
    """The fault table's district: tiny (one school, ~30 users), generated once and copied per rig."""
    from roster_pipeline.simulator import generate_district

    return generate_district("tiny", seed=3)


@pytest.fixture(scope="session")
def fault_first_imports(fault_template, tmp_path_factory: pytest.TempPathFactory):
    """The fault table's first import, synced once per worker and database when first asked for."""
    from roster_pipeline_tests.fault_harness import FirstImports

    with ExitStack() as databases:

        def new_postgres_database() -> str:
            return databases.enter_context(postgres_databases(POSTGRES_URL))()

        yield FirstImports(
            fault_template, tmp_path_factory.mktemp("fault-first-imports"), new_postgres_database
        )


@pytest.fixture()
def fault_rig(fault_template, fault_first_imports, tmp_path: Path, warehouse_url: str):
    """``fault_rig(**registry_settings)``: a simulator district + registry + warehouse for one fault row
    (on SQLite and on Postgres); ``fault_rig.after_first_import(...)`` the same with the first import
    already published. See roster_pipeline_tests/fault_harness.py."""
    from roster_pipeline_tests.fault_harness import rig_factory

    yield from rig_factory(fault_template, tmp_path, warehouse_url, fault_first_imports)


@pytest.fixture(autouse=True)
def _no_inherited_dagster_state_storage() -> Iterator[None]:
    """Each test starts without a "current" Dagster state storage, and whatever a test sets is undone.

    Entering a ``DagsterInstance`` makes its state storage the current one (a context variable) until the
    instance is exited; Dagster reads it whenever it loads definitions.  An instance exited out of order, or
    from another thread, leaves its storage behind after the instance is gone, and the next test that loads
    definitions with a bare instance fails with "Attempted to resolve undefined DagsterInstance weakref"
    (seen in CI, depending on garbage collection).  Resetting the variable around each test keeps tests
    independent of their order.  Within a test the same holds for Dagster's evaluation contexts
    (``build_schedule_context``, ``build_sensor_context``): they enter an instance of their own, so the
    tests use them in a ``with`` block, which exits it at once instead of at garbage collection.
    """
    with set_defs_state_storage(None):
        yield
