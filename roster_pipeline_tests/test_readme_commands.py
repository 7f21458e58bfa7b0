"""Every shell command the README and docs/ print is run verbatim, so the documentation never shows a command
that fails.

Which README text counts as a command (``readme_commands``):

* every non-blank line of every fenced ```` ```bash ```` block, exactly as printed (comments and
  alignment spaces included: bash ignores them);
* every inline code span outside fenced blocks that starts with ``roster-pipeline `` or ``dagster `` and
  carries at least one option (a word starting with ``-``), its whitespace (line breaks, indentation)
  collapsed to single spaces.  A span of bare words (``roster-pipeline review``, ``dagster job
  execute``) names a command in prose; a span with options is something to type, so it must run as
  printed: placeholders belong in the prose around it, never inside it.

``TABLE`` maps each command text to how it is run, in the order the walkthrough runs them:

* ``FOREGROUND``: ``bash -c "<line>"``, expected to exit 0 (and print what ``expect`` lists);
* ``SERVER``: started in the background with ``bash -c``, ready once it prints its ``ready`` line; the
  commands whose ``during`` names it run while it serves, then it is stopped with SIGTERM and must exit 0;
* ``SKIP``, only for the Dagster UI (``roster-pipeline demo`` runs ``dagster dev`` until Ctrl-C; its
  ``--no-ui`` form is run here) and the test command itself;
* ``BENCHMARK``: runs in ``test_readme_benchmark_command``, marked ``benchmark`` (deselected by default,
  run with ``-m benchmark``).

``pip install -e ... && X``: the install is the step CI has already done (the package under test is
installed, and a test never reinstalls it); the remainder ``X`` is the command.  Both such README lines
are the UI and the test command, so neither runs here.

Where: every command runs in one folder laid out like the repository root (``copy_repository_layout``:
the production ``dagster.yaml`` and ``workspace.yaml``), the directory the README says to use, so the
demo's ``.roster_pipeline/`` folder is written there, never into the checkout.  The commands share that
folder's state in the order of the table, as a user's session would: the demo syncs, then a held import
made by ``roster-pipeline demo --once --scenario wipe_enrollments --leave-held`` (a set-up step, not a
README line) for ``reject``; then, while ``roster-pipeline demo --no-ui`` serves its simulator, the
``source .roster_pipeline/demo.env`` block, the backfills, a wipe on the live simulator, ``reprocess``
(held again), ``approve``, ``undo`` and ``reject --stay-paused``.  ``sourced`` lines run after the
README's ``source .roster_pipeline/demo.env`` in the same shell, as the README says to.  The only
environment the test adds is ``ROSTER_BENCH_DATABASE_URL`` (a fresh database, since the bench drops and
recreates its own).

The walkthrough runs in chapters that share nothing (``chapter_of``), each once per module (a
module-scoped fixture records each command's outcome) and each on one of the suite's workers, side by side
with the others; each command is then one test case that reads its outcome.  The table and the README must list the same
commands: a README command the table does not cover, or a table entry the README no longer prints,
fails ``test_the_table_covers_exactly_the_readme_commands``.
"""

from __future__ import annotations

import email
import email.policy
import math
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from roster_pipeline.benchmark.report import FINAL_KEYS, TARGETS, parse_final_line
from roster_pipeline.cli.demo_home import apply_demo_settings, demo_home
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline_tests.paths import README_PATH
from roster_pipeline_tests.shell_helpers import (
    SOURCE_SETTINGS,
    BackgroundCommand,
    copy_repository_layout,
    port_is_free,
    shell,
)

FOREGROUND, SERVER, SKIP, BENCHMARK = "foreground", "server", "skip", "benchmark"

# Set-up, not a README line: leaves riverside_usd's import held and the district paused (docs/operations.md, "Checks and
# import thresholds"), for the first review command.
LEAVE_HELD = "roster-pipeline demo --once --scenario wipe_enrollments --leave-held"

REJECT = 'roster-pipeline review riverside_usd reject    --reviewer "Jo Admin"'
DEMO_NO_UI = "roster-pipeline demo --no-ui"
SIMULATOR_8000 = "roster-pipeline simulator --size small --seed 1 --port 8000   # prints the token URL and the API base URL"
EXECUTE = """dagster job execute -m roster_pipeline.definitions -j sync_district --tags '{"dagster/partition": "lakeside_isd"}'"""
BENCH_SMOKE = "roster-pipeline bench --size tiny --skip-naive --skip-dlt --skip-small   # a smoke run"
BENCH_LARGE = "roster-pipeline bench --size large --seed 5 --with-dlt           # everything (the naive script takes a while)"


@dataclass(frozen=True)
class Run:
    """How one README command is run, and what it must do besides exiting 0."""

    how: str
    why: str = ""
    during: str = ""  # the SERVER command that must be serving while this one runs
    sourced: bool = False  # runs after `source .roster_pipeline/demo.env` in the same shell
    setup: str = ""  # a set-up command (not a README line) run just before this one
    expect: tuple[str, ...] = ()  # text its output contains
    new_runs: tuple[str, ...] | None = (
        None  # sorted statuses of the Dagster runs it adds to the demo's instance
    )
    ready: str = ""  # SERVER: the start of the output line that says it serves


TABLE: dict[str, Run] = {
    "roster-pipeline --version": Run(FOREGROUND, expect=("roster-pipeline ",)),
    "roster-pipeline simulator mutate --help": Run(
        FOREGROUND, expect=("wipe_enrollments", "--param KEY=VALUE")
    ),
    SIMULATOR_8000: Run(
        SERVER,
        "the README's fixed port: it must be free (the test fails saying so rather than change the line)",
        ready="ready",
        expect=(
            "token URL:    http://127.0.0.1:8000/campus/oauth2/token?appName=demo",
            "API base URL: http://127.0.0.1:8000/campus/api/oneroster/v1p1/demo/ims/oneroster/v1p1",
        ),
    ),
    "roster-pipeline simulator mutate --url http://127.0.0.1:8000 --app demo change_users --param percent=5": Run(
        FOREGROUND, during=SIMULATOR_8000, expect=('"kind": "change_users"',)
    ),
    "roster-pipeline simulator stats --url http://127.0.0.1:8000 --app demo": Run(
        FOREGROUND, during=SIMULATOR_8000, expect=('"users"',)
    ),
    "roster-pipeline simulator --auth oauth1": Run(
        SERVER, "picks a free port", ready="ready", expect=("auth:         OAuth 1.0a, HMAC-SHA256",)
    ),
    BENCH_SMOKE: Run(
        FOREGROUND, "into a fresh database named by ROSTER_BENCH_DATABASE_URL", expect=("full_s=",)
    ),
    BENCH_LARGE: Run(BENCHMARK, "1.33M records and dlt's own virtualenv: minutes; run with -m benchmark"),
    "roster-pipeline demo --once": Run(FOREGROUND, expect=("riverside_usd", "lakeside_isd")),
    "roster-pipeline demo --once --scenario wipe_enrollments": Run(
        FOREGROUND,
        expect=("check change_thresholds: FAILED", "riverside_usd: paused=True", "district resumed"),
    ),
    REJECT: Run(
        FOREGROUND,
        "the held import of the set-up: discarded, the district resumed",
        setup=LEAVE_HELD,
        expect=("discarded, published data kept; district resumed",),
    ),
    DEMO_NO_UI: Run(
        SERVER,
        "the simulator of the demo, for the second shell's commands below",
        ready="serving the simulator",
    ),
    SOURCE_SETTINGS: Run(FOREGROUND, during=DEMO_NO_UI),
    EXECUTE: Run(FOREGROUND, during=DEMO_NO_UI, sourced=True, new_runs=("SUCCESS",)),
    "dagster asset materialize -m roster_pipeline.definitions --select 'group:roster_sync' --partition lakeside_isd": Run(
        FOREGROUND, during=DEMO_NO_UI, sourced=True, new_runs=("SUCCESS",)
    ),
    """dagster job launch -w workspace.yaml -j sync_district --tags '{"dagster/partition": "lakeside_isd"}'""": Run(
        FOREGROUND,
        "queued for the UI's daemon, which is not running",
        during=DEMO_NO_UI,
        sourced=True,
        new_runs=("QUEUED",),
    ),
    """dagster job launch -w workspace.yaml -j sync_district --tags '{"dagster/partition": "lakeside_isd", "roster/sync_mode": "full"}'""": Run(
        FOREGROUND,
        "with DAGSTER_HOME pointing at the demo's instance",
        during=DEMO_NO_UI,
        sourced=True,
        new_runs=("QUEUED",),
    ),
    "roster-pipeline backfill --all": Run(FOREGROUND, during=DEMO_NO_UI, new_runs=("SUCCESS", "SUCCESS")),
    "roster-pipeline backfill --districts riverside_usd,lakeside_isd": Run(
        FOREGROUND, during=DEMO_NO_UI, new_runs=("SUCCESS", "SUCCESS")
    ),
    'roster-pipeline backfill --districts lakeside_isd --rollover-override "Jo Admin"': Run(
        FOREGROUND, during=DEMO_NO_UI, new_runs=("SUCCESS",)
    ),
    'roster-pipeline simulator mutate --url "$ROSTER_DEMO_SIMULATOR_URL" --app riversideusd wipe_enrollments --param percent=90': Run(
        FOREGROUND,
        "wipes the live simulator's district, so that reprocess holds it again",
        during=DEMO_NO_UI,
        sourced=True,
        expect=('"kind": "wipe_enrollments"',),
    ),
    'roster-pipeline review riverside_usd reprocess --reviewer "Jo Admin"   # fetch again now, check again': Run(
        FOREGROUND,
        "fetches the wiped district again: held again",
        during=DEMO_NO_UI,
        expect=("failed its checks again and is held; district stays paused",),
    ),
    'roster-pipeline review riverside_usd approve   --reviewer "Jo Admin" --note "new attendance zones"': Run(
        FOREGROUND,
        "publishes what reprocess held",
        during=DEMO_NO_UI,
        expect=("published with thresholds overridden", "district resumed"),
    ),
    'roster-pipeline review riverside_usd undo --reviewer "Jo Admin" --note "wrong term file"': Run(
        FOREGROUND, "undoes the approved import; the district stays paused", during=DEMO_NO_UI
    ),
    'roster-pipeline review riverside_usd reject    --reviewer "Jo Admin" --stay-paused': Run(
        FOREGROUND,
        "the district paused by the undo: nothing held, stays paused",
        during=DEMO_NO_UI,
        expect=("no held import; district stays paused",),
    ),
    "pip install -e . && roster-pipeline demo": Run(
        SKIP, "the Dagster UI (dagster dev) runs until Ctrl-C; its --no-ui form is run above"
    ),
    'pip install -e ".[dev]" && python3 -m pytest': Run(SKIP, "the test command itself"),
}

INLINE_PREFIXES = ("roster-pipeline ", "dagster ")


def readme_commands(text: str) -> list[str]:
    """The README's commands by the rule of the module docstring, in README order, each once."""
    found: list[str] = []
    for block in re.finditer(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        found += [line.rstrip() for line in block.group(1).splitlines() if line.strip()]
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    for span in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose):
        words = " ".join(span.group(1).split())
        if words.startswith(INLINE_PREFIXES) and any(w.startswith("-") for w in words.split()[1:]):
            found.append(words)
    return list(dict.fromkeys(found))


@dataclass
class Outcome:
    returncode: int | None = None
    output: str = ""
    new_runs: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str = ""  # why it could not be run as the table says
    skipped: str = ""  # why it was not run here (the bench without a Postgres server, outside CI)


@dataclass
class Walkthrough:
    root: Path
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    demo_no_ui_printed: str = ""
    setup_printed: dict[str, str] = field(default_factory=dict)  # set-up command -> its standard output


def run_statuses(root: Path) -> dict[str, str]:
    home = demo_home(root).dagster_home
    if not (home / "dagster.yaml").exists():
        return {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return {r.run_id: r.status.value for r in instance.get_runs()}


def run_foreground(command: str, spec: Run, root: Path, env: dict[str, str]) -> Outcome:
    line = f"{SOURCE_SETTINGS}\n{command}" if spec.sourced else command
    before = run_statuses(root) if spec.new_runs is not None else {}
    started = time.monotonic()
    completed = shell(line, root, env)
    outcome = Outcome(
        completed.returncode, completed.stdout + completed.stderr, seconds=time.monotonic() - started
    )
    if spec.new_runs is not None:
        outcome.new_runs = tuple(
            sorted(s for run_id, s in run_statuses(root).items() if run_id not in before)
        )
    return outcome


def run_server(command: str, spec: Run, w: Walkthrough, env: dict[str, str]) -> None:
    if command == SIMULATOR_8000 and not port_is_free(8000):
        error = "port 8000 is taken on 127.0.0.1: free it to run the README's simulator lines as printed"
        for inner in [command, *(c for c, r in TABLE.items() if r.during == command)]:
            w.outcomes[inner] = Outcome(error=error)
        return
    server = BackgroundCommand(command, w.root, w.root.parent / f"server-{len(w.outcomes)}.log", env)
    started = time.monotonic()
    try:
        printed = server.start(spec.ready)
    except AssertionError as exc:
        server.stop()
        for inner in [command, *(c for c, r in TABLE.items() if r.during == command)]:
            w.outcomes[inner] = Outcome(error=str(exc))
        return
    if command == DEMO_NO_UI:
        w.demo_no_ui_printed = printed
    try:
        for inner, inner_spec in TABLE.items():
            if inner_spec.during == command:
                w.outcomes[inner] = run_foreground(inner, inner_spec, w.root, env)
    finally:
        returncode = server.stop()
    w.outcomes[command] = Outcome(returncode, server.output(), seconds=time.monotonic() - started)


@pytest.fixture(scope="module")
def bench_database(postgres_server_url: str) -> Iterator[str]:
    """A database name the bench may drop and create (it must contain "bench"), dropped afterwards."""
    name = f"roster_readme_bench_{uuid.uuid4().hex[:10]}"
    yield sa.engine.make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    admin = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def chapter_of(command: str) -> str:
    """The part of the walkthrough a command belongs to. Chapters share nothing (each has a repository root
    of its own), so they run side by side on the suite's workers; within one, commands run in table order."""
    spec = TABLE[command]
    if spec.during:
        return chapter_of(spec.during)
    if command.startswith("roster-pipeline bench"):
        return "bench"
    if command == DEMO_NO_UI:
        return "second_shell"  # the demo's simulator serving, and the commands of a second shell
    if command.startswith(("roster-pipeline demo --once", "roster-pipeline review")):
        return "demo_once"
    return "cli"


def in_chapter(command: str) -> object:
    """A test case of one command, on the worker that walks its chapter (built once there)."""
    return pytest.param(command, marks=pytest.mark.xdist_group(f"readme-{chapter_of(command)}"))


class Chapters:
    """Each chapter walked on first use, once per module (so once per worker: a chapter's tests are all
    on the same worker)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> None:
        self.tmp_path_factory, self.request = tmp_path_factory, request
        self.walked: dict[str, Walkthrough] = {}

    def __getitem__(self, chapter: str) -> Walkthrough:
        if chapter not in self.walked:
            self.walked[chapter] = walk(chapter, self.tmp_path_factory, self.request)
        return self.walked[chapter]


@pytest.fixture(scope="module")
def chapters(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Chapters:
    return Chapters(tmp_path_factory, request)


def walk(
    chapter: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Walkthrough:
    """Every FOREGROUND and SERVER command of one chapter, once, in table order, in a repository root of
    its own."""
    w = Walkthrough(copy_repository_layout(tmp_path_factory.mktemp(f"readme-{chapter}") / "repository"))
    env: dict[str, str] = {}
    no_postgres = ""
    if chapter == "bench":  # the bench needs Postgres: without a server (never in CI) only it is skipped
        try:
            env = {"ROSTER_BENCH_DATABASE_URL": request.getfixturevalue("bench_database")}
        except pytest.skip.Exception as exc:
            no_postgres = str(exc)
    for command, spec in TABLE.items():
        if spec.during or spec.how in (SKIP, BENCHMARK) or chapter_of(command) != chapter:
            continue
        if command.startswith("roster-pipeline bench") and no_postgres:
            w.outcomes[command] = Outcome(skipped=no_postgres)
            continue
        if spec.setup:
            started = time.monotonic()
            completed = shell(spec.setup, w.root, env)
            print(f"{time.monotonic() - started:7.1f}s  (set-up) {spec.setup}")
            w.setup_printed[spec.setup] = completed.stdout
            if completed.returncode != 0:
                w.outcomes[command] = Outcome(
                    error=f"set-up {spec.setup!r} failed:\n{completed.stdout[-2000:]}"
                    f"{completed.stderr[-2000:]}"
                )
                continue
        if spec.how == SERVER:
            run_server(command, spec, w, env)
        else:
            w.outcomes[command] = run_foreground(command, spec, w.root, env)
    # where the module's time goes (shown with -s)
    for command, outcome in w.outcomes.items():
        print(f"{outcome.seconds:7.1f}s  {command}")
    return w


def documented_commands() -> list[str]:
    """The commands of the README and of every page under docs/, by the same rule, each once."""
    pages = [README_PATH, *sorted((README_PATH.parent / "docs").rglob("*.md"))]
    found = [c for page in pages for c in readme_commands(page.read_text(encoding="utf-8"))]
    return list(dict.fromkeys(found))


def test_the_table_covers_exactly_the_readme_commands() -> None:
    in_readme = documented_commands()
    missing = [c for c in in_readme if c not in TABLE]
    stale = [c for c in TABLE if c not in in_readme]
    assert not missing, "README commands the table does not say how to run:\n" + "\n".join(missing)
    assert not stale, "table entries the README no longer prints:\n" + "\n".join(stale)
    skipped = {c for c, r in TABLE.items() if r.how == SKIP}
    assert skipped == {
        "pip install -e . && roster-pipeline demo",
        'pip install -e ".[dev]" && python3 -m pytest',
    }
    for command, spec in TABLE.items():
        assert not spec.during or TABLE[spec.during].how == SERVER, command
        assert spec.how != SERVER or spec.ready, command


def test_the_rule_for_inline_spans() -> None:
    text = (
        "Run `roster-pipeline demo --once` or `roster-pipeline\n  --version`; `roster-pipeline review` and "
        "`dagster job execute` are names; `dagster-daemon run -w w.yaml` is not a `dagster ` command.\n"
        "```bash\nsource x.env\n\nroster-pipeline simulator --port 1   # a comment\n```\n"
        "```yaml\nroster-pipeline: --not-a-command\n```\n"
    )
    assert readme_commands(text) == [
        "source x.env",
        "roster-pipeline simulator --port 1   # a comment",
        "roster-pipeline demo --once",
        "roster-pipeline --version",
    ]


RUNNABLE = [c for c, r in TABLE.items() if r.how in (FOREGROUND, SERVER)]


@pytest.mark.parametrize("command", [in_chapter(c) for c in RUNNABLE])
def test_readme_command_runs_as_printed(command: str, chapters: Chapters) -> None:
    spec, outcome = TABLE[command], chapters[chapter_of(command)].outcomes.get(command)
    assert outcome is not None, f"the walkthrough never ran {command!r}"
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert not outcome.error, outcome.error
    assert outcome.returncode == 0, f"{command}\nexit {outcome.returncode}\n{outcome.output[-4000:]}"
    for text in spec.expect:
        assert text in outcome.output, f"{command}: no {text!r} in\n{outcome.output[-4000:]}"
    if spec.new_runs is not None:
        assert outcome.new_runs == spec.new_runs, (
            f"{command}: new runs {outcome.new_runs}\n{outcome.output[-3000:]}"
        )


@pytest.mark.benchmark
@pytest.mark.parametrize("command", [c for c, r in TABLE.items() if r.how == BENCHMARK])
def test_readme_benchmark_command(command: str, repository_root: Path, bench_database: str) -> None:
    completed = shell(
        command, repository_root, {"ROSTER_BENCH_DATABASE_URL": bench_database}, timeout=3 * 3600
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    print(completed.stdout[-3000:])


@pytest.mark.xdist_group("readme-second_shell")
def test_the_demo_folder_is_where_the_demo_says_and_nothing_else_is_left(chapters: Chapters) -> None:
    walkthrough = chapters["second_shell"]
    root, printed = walkthrough.root, walkthrough.demo_no_ui_printed
    home = demo_home(root)
    assert printed, "roster-pipeline demo --no-ui did not start"
    assert f"Dagster instance:    {home.dagster_home}\n" in printed
    assert f"email outbox:        {home.outbox}\n" in printed
    assert f"demo settings:       {home.settings_file} " in printed
    assert home.settings_file.stat().st_mode & 0o077 == 0, "demo.env holds the demo credentials: user-only"
    assert not list(root.glob(".tmp_dagster_home_*")), "no temporary Dagster instance left behind"


@pytest.mark.xdist_group("readme-second_shell")
def test_no_command_of_the_second_shell_prints_a_demo_secret(chapters: Chapters) -> None:
    """The second shell's Dagster and review commands read the demo's client secrets from demo.env; none
    shows them (stdout and stderr alike), and they did sync: ``dagster job execute`` recorded a successful run."""
    walkthrough = chapters["second_shell"]
    settings: dict[str, str] = {}
    assert apply_demo_settings(settings, walkthrough.root) is not None
    secrets = [value for name, value in settings.items() if name.endswith("_SECRET")]
    assert len(secrets) == 2 and all(len(s) > 16 for s in secrets)
    assert walkthrough.outcomes[EXECUTE].new_runs == ("SUCCESS",)
    for command, outcome in walkthrough.outcomes.items():
        assert not any(secret in outcome.output for secret in secrets), command


def test_without_the_demo_settings_dagster_stops_on_the_production_instance(repository_root: Path) -> None:
    """In a clone's root without ``source .roster_pipeline/demo.env``, Dagster reads the production
    dagster.yaml and stops on its Postgres variables: why the README always sources the demo's settings."""
    completed = shell(EXECUTE, repository_root)
    assert completed.returncode != 0
    assert "DAGSTER_PG_USER" in completed.stderr


# -- what the walkthrough's demo runs print, write and send (the demo is not run again for these) ----------

DEMO_ONCE = "roster-pipeline demo --once"
DEMO_SCENARIO = "roster-pipeline demo --once --scenario wipe_enrollments"


def assert_quiet(outcome: Outcome) -> None:
    """The demo's in-process runs log at INFO: no Dagster DEBUG events, and no stack trace for a hold."""
    assert " - INFO - " in outcome.output, "the runs' own progress is still shown"
    assert " - DEBUG - " not in outcome.output
    assert "Stack Trace" not in outcome.output and "Traceback" not in outcome.output, outcome.output[-3000:]


def demo_outcome(chapters: Chapters, command: str) -> tuple[Walkthrough, Outcome]:
    """A demo command of the walkthrough, which must have exited 0 and logged quietly."""
    walkthrough = chapters["demo_once"]
    outcome = walkthrough.outcomes[command]
    assert outcome.returncode == 0, outcome.output[-3000:]
    assert_quiet(outcome)
    return walkthrough, outcome


def table_rows(printed: str) -> list[list[str]]:
    return [
        line.split() for line in printed.splitlines() if line.startswith(("riverside_usd", "lakeside_isd"))
    ]


@pytest.mark.xdist_group("readme-demo_once")
def test_demo_once_syncs_both_demo_districts_into_the_embedded_default(chapters: Chapters) -> None:
    walkthrough, outcome = demo_outcome(chapters, DEMO_ONCE)
    table = table_rows(outcome.output)
    assert {(row[0], row[1]) for row in table} == {
        (d, r.name) for d in ("riverside_usd", "lakeside_isd") for r in RESOURCES
    }
    assert all(int(row[2]) > 0 for row in table), "every resource of both districts fetched rows"

    # The embedded SQLite file in the demo folder holds both districts.
    engine = sa.create_engine(f"sqlite:///{walkthrough.root / '.roster_pipeline' / 'warehouse.sqlite'}")
    with engine.connect() as conn:
        districts = set(conn.execute(sa.text("SELECT DISTINCT district_id FROM enrollments")).scalars())
    engine.dispose()
    assert districts == {"riverside_usd", "lakeside_isd"}

    # The registry it wrote names env vars, never secret values.
    registry = (walkthrough.root / ".roster_pipeline" / "demo" / "districts.yaml").read_text()
    assert "client_secret_env: ROSTER_DEMO_RIVERSIDE_USD_SECRET" in registry
    assert "client_secret:" not in registry

    # The next demo run (the scenario's, before it changes anything) finds nothing changed.
    again = walkthrough.outcomes[DEMO_SCENARIO].output.split("\nscenario ")[0]
    rows = table_rows(again)
    assert rows and all(row[3:6] == ["0", "0", "0"] for row in rows), again


@pytest.mark.xdist_group("readme-demo_once")
def test_demo_scenario_shows_the_whole_review_loop_headless(chapters: Chapters) -> None:
    """A wiped SIS is held and paused, Check Your Data lands in the outbox, approve publishes, Import Results follows."""
    _, outcome = demo_outcome(chapters, DEMO_SCENARIO)
    # the expected hold is told in one line each by Dagster and by the demo, no stack traces
    assert "held for review, nothing was published" in outcome.output
    assert "check change_thresholds: FAILED" in outcome.output
    assert "riverside_usd: import held; published rows unchanged: True" in outcome.output
    assert "riverside_usd: paused=True" in outcome.output
    assert "review approve: import" in outcome.output and "district resumed" in outcome.output

    listed = re.findall(r"^  (/\S+\.eml)$", outcome.output, flags=re.M)  # the outbox, as the demo lists it
    held = {Path(p).name.split("_import-")[1] for p in listed if "riverside_usd_check_your_data" in p}
    assert len(held) == 1, listed
    (import_eml,) = held
    assert any(f"riverside_usd_import_results_import-{import_eml}" in p for p in listed), listed
    check_your_data = next(Path(p) for p in listed if "riverside_usd_check_your_data" in p)
    message = email.message_from_bytes(check_your_data.read_bytes(), policy=email.policy.default)
    assert message["To"] == "roster-admin@riversideusd.example.org"
    assert "Check Your Data" in message["Subject"]
    assert {a.get_filename() for a in message.iter_attachments()} == {
        "rejected_rows.csv",
        "field_changes.csv",
    }


@pytest.mark.xdist_group("readme-demo_once")
def test_the_review_command_a_check_your_data_email_prints_works_when_pasted(chapters: Chapters) -> None:
    """The set-up's held import emailed Check Your Data; the README's reject line is the command that email
    prints (plus the reviewer), and it worked pasted in the folder the demo ran in, nothing exported."""
    walkthrough = chapters["demo_once"]
    root, printed = walkthrough.root, walkthrough.setup_printed[LEAVE_HELD]
    home = demo_home(root)
    assert "riverside_usd: paused=True" in printed, printed[-3000:]

    # One outbox, at the printed absolute path; every email path it logs is absolute and inside it.
    assert [p for p in root.rglob("outbox") if p.is_dir()] == [home.outbox]
    listed = [line.strip() for line in printed.split("emails written to the outbox:\n", 1)[1].splitlines()]
    assert listed and all(Path(p).is_absolute() and Path(p).parent == home.outbox for p in listed), printed
    (held,) = [Path(p) for p in listed if "riverside_usd_check_your_data" in p]
    message = email.message_from_bytes(held.read_bytes(), policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    pasted = re.search(r"roster-pipeline review riverside_usd reject[^\n`]*", body.get_content())
    assert pasted, body.get_content()
    assert " ".join(REJECT.split()) == f'{pasted.group(0).strip()} --reviewer "Jo Admin"'
    outcome = walkthrough.outcomes[REJECT]  # run by shell(): a fresh bash in the demo's folder
    assert outcome.returncode == 0 and "district resumed" in outcome.output, outcome.output[-3000:]

    # The demo's syncs are on its stable instance, where the UI and `dagster job launch` look.
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        runs = [r for r in instance.get_runs() if r.tags.get("dagster/partition") == "riverside_usd"]
    # demo --once syncs riverside_usd once; each scenario run twice (a clean sync, then the wiped one)
    assert len(runs) == 5, [r.status for r in runs]


@pytest.mark.xdist_group("readme-bench")
def test_the_bench_smoke_run_measures_the_real_job_and_reports_every_figure(chapters: Chapters) -> None:
    """The figures themselves are not asserted (the machine is shared and noisy): the bench ran the real
    job, every loader it compares fetched exactly the simulator's records, and the final line carries every
    key, the skipped ones as nan."""
    outcome = chapters["bench"].outcomes[BENCH_SMOKE]
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert outcome.returncode == 0, outcome.output[-3000:]
    out = outcome.output
    final = [line for line in out.splitlines() if line.startswith("full_s=")]  # stdout's last line
    assert len(final) == 1, out[-3000:]
    figures = parse_final_line(final[0])
    assert tuple(figures) == FINAL_KEYS
    for measured in ("full_s", "limit_s", "ratio_limit", "nochange_ratio", "delta_ratio"):
        assert figures[measured] > 0, measured
    assert 20 < figures["rss_mb"] < 2000
    for skipped in ("dlt_s", "ratio_dlt", "naive_ratio", "rss_small_mb"):
        assert math.isnan(figures[skipped]), skipped
    # The limit loader staged exactly the simulator's records; the job's run is read from its event log.
    assert "record counts match the simulator" in out
    assert "Dagster job sync_district, run " in out and "WARNING" not in out
    assert "records/s" in out and "peak RSS: sync process" in out
    for resource in RESOURCES:
        assert f"\n{resource.name} " in out
    for target in TARGETS:
        assert target.label in out
