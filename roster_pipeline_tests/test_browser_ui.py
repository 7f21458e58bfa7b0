"""The Dagster UI as a data engineer sees it, in a real browser: the asset graph of ``roster_sync``, and a
district's partition of ``checked_snapshot`` with its three blocking checks.

Why a browser: the other Dagster tests prove that check results are stored per district; only the
rendered pages prove the UI shows them where the README says to look.  Everything is real: the
``dagster-webserver`` process serving the repository's ``workspace.yaml`` on a fresh local instance, a
registry of two districts served by the OneRoster simulator, one of them synced by the ``sync_district``
job, and headless Chromium (Debian's ``chromium`` package) driven by Playwright.

Screenshots go to ``$ROSTER_TEST_ARTIFACTS`` (default ``roster_pipeline_tests/artifacts/``, ignored by
git); with ``ROSTER_UPDATE_SCREENSHOTS=1`` they also replace the README's pictures in ``docs/images/``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import httpx
import pytest

from roster_pipeline.definitions import build_definitions
from roster_pipeline.defs.jobs import SYNC_JOB_NAME
from roster_pipeline.pipeline.run_tags import SYNC_MODE_TAG
from roster_pipeline.pipeline.snapshot_checks import CHANGE_THRESHOLDS, SCHOOL_THRESHOLDS, VALID_RECORDS
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district

from .databases import IN_CI
from .paths import PROJECT_ROOT
from .pipeline_helpers import write_registry

pytestmark = pytest.mark.xdist_group("browser_ui")  # one worker builds the module's shared set-up once

if TYPE_CHECKING:  # Playwright is a dev extra; a clone without it skips these tests instead of failing import
    from playwright.sync_api import Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
# Chromium's own background traffic (component updates, sync, field trials) is refused on a closed
# network and only slows the start; none of it is needed to render a page.  The profile is a fresh folder.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
UI_TIMEOUT_MS = 60_000  # generous: on a busy machine the first page and its GraphQL queries can be slow

SYNCED, UNSYNCED = "lakeside_isd", "riverside_usd"
GRAPH_ASSETS = (
    "roster_import",
    "academic_sessions",
    "classes",
    "courses",
    "demographics",
    "enrollments",
    "orgs",
    "users",
    "checked_snapshot",
    "published_roster",
)
CHECKS = (VALID_RECORDS, CHANGE_THRESHOLDS, SCHOOL_THRESHOLDS)

# The README's pictures, regenerated with ROSTER_UPDATE_SCREENSHOTS=1.
README_IMAGES = PROJECT_ROOT / "docs" / "images"
ASSET_GRAPH_PNG = "dagster_asset_graph.png"
DISTRICT_CHECKS_PNG = "dagster_district_checks.png"

# A local instance (SQLite files in DAGSTER_HOME), so the repository's production dagster.yaml (Postgres)
# is never read.  Dagster's first-visit dialog stays enabled: the test meets the UI as a new user does.
LOCAL_INSTANCE_YAML = """\
# The browser test's Dagster instance: runs, events and schedules in SQLite files in this folder.
telemetry:
  enabled: false
"""
# Dagster's first-visit dialog ("Join the Dagster community", shown once per instance until dismissed)
# and any similar onboarding modal: the button that closes it without signing up for anything.
FIRST_VISIT_DIALOG = re.compile(r"Join the Dagster community|What's new|Get started", re.IGNORECASE)
DISMISS_BUTTON = re.compile(r"^(Skip|Dismiss|Close|No thanks|Not now|Got it)$", re.IGNORECASE)


def require_browser() -> None:
    """Skip politely in a user's clone without Chromium or Playwright; with CI=true both are required."""
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (Debian package chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if missing:
        reason = "the browser test needs " + " and ".join(missing)
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)


def artifacts_dir() -> Path:
    default = PROJECT_ROOT / "roster_pipeline_tests" / "artifacts"
    folder = Path(os.environ.get("ROSTER_TEST_ARTIFACTS") or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_screenshot(page: Page, name: str, readme_image: bool = False) -> Path:
    """A test artifact; a README picture too when ROSTER_UPDATE_SCREENSHOTS=1 asks for it."""
    path = artifacts_dir() / name
    page.screenshot(path=str(path))
    if readme_image and os.environ.get("ROSTER_UPDATE_SCREENSHOTS") == "1":
        README_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_IMAGES / name)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class DagsterUI:
    url: str
    sync_run_id: str  # the run that synced SYNCED


def wait_until_serving(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 180.0) -> None:
    """Poll /server_info until the webserver answers; fail early, with its output, if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text()[-4000:]
            raise AssertionError(f"dagster-webserver exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    output = log.read_text()[-4000:]
    raise AssertionError(f"dagster-webserver did not answer within {timeout:.0f}s:\n{output}")


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterUI]:
    """dagster-webserver on a fresh local instance with two simulator districts, one of them synced."""
    require_browser()
    root = tmp_path_factory.mktemp("browser_ui")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML)
    tenants = [
        Tenant(SYNCED, "lakeside-client", "lakeside-secret-1", generate_district("tiny", seed=41)),
        Tenant(UNSYNCED, "riverside-client", "riverside-secret-2", generate_district("tiny", seed=42)),
    ]
    registry_path = root / "districts.yaml"
    with SimulatorServer(tenants) as simulator, pytest.MonkeyPatch.context() as patch:
        credentials: dict[str, str] = {}
        registry = write_registry(
            registry_path,
            simulator,
            credentials,
            [SYNCED, UNSYNCED],
            admin_emails=["roster-admin@example.org"],
        )
        for name, value in {
            **credentials,
            "DAGSTER_HOME": str(home),
            "ROSTER_DISTRICTS_FILE": str(registry_path),
            "ROSTER_DATABASE_URL": f"sqlite:///{root / 'warehouse.sqlite'}",
            "ROSTER_OUTBOX_DIR": str(root / "outbox"),
        }.items():
            patch.setenv(name, value)

        # Started first: the webserver loads the code location while the district syncs.
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = root / "dagster-webserver.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dagster_webserver",
                    "-w",
                    "workspace.yaml",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                ],
                cwd=PROJECT_ROOT,
                env=dict(os.environ),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            # The district's sync as the UI launches it: the sync_district job on the instance the webserver
            # reads, so its run, materializations and check results are what the pages show.
            job = build_definitions(registry).resolve_job_def(SYNC_JOB_NAME)
            with dg.DagsterInstance.get() as instance:
                result = job.execute_in_process(
                    partition_key=SYNCED,
                    instance=instance,
                    tags={SYNC_MODE_TAG: "full"},
                    raise_on_error=False,
                )
            assert result.success, "the district's sync failed: the UI would have nothing to show"
            wait_until_serving(process, url, log)
            yield DagsterUI(url, result.run_id)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def page(dagster_ui: DagsterUI) -> Iterator[Page]:
    """One headless Chromium page for the module, on a fresh profile, that dismisses first-visit dialogs."""
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            page = context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)  # assertions wait as long as actions do
            # The dialog opens whenever Dagster decides to show it (after its first queries): Playwright
            # runs this handler before any action or assertion finds the dialog in the way.
            page.add_locator_handler(first_visit_dialog(page), dismiss_dialog)
            yield page
        finally:
            context.close()


def first_visit_dialog(page: Page) -> Locator:
    return page.get_by_role("dialog").filter(has_text=FIRST_VISIT_DIALOG)


def dismiss_dialog(dialog: Locator) -> None:
    dialog.get_by_role("button", name=DISMISS_BUTTON).first.click()


def shown(page: Page, text: str) -> Locator:
    """The first rendered element whose whole text is ``text`` (Dagster also renders hidden copies of
    names, to measure them for truncation)."""
    return page.get_by_text(text, exact=True).locator("visible=true").first


def settle(page: Page) -> None:
    """Before a screenshot: no first-visit dialog over the page (the handler closes one if it is there)."""
    from playwright.sync_api import expect

    expect(first_visit_dialog(page)).to_have_count(0)


# Whether every name is drawn on screen, not under the toolbar or past an edge: the element at the top and
# the bottom of the name's box is the name (or its node).  The graph draws under its own toolbar, so
# Playwright's viewport check alone would pass for a name the toolbar hides.
NAMES_ON_SCREEN_JS = """names => names.every(name => [...document.querySelectorAll("body *")]
  .filter(el => el.children.length === 0 && el.textContent.trim() === name)
  .some(el => {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) return false;
    return [r.top + 1, r.bottom - 1].every(y => {
      const x = r.left + r.width / 2;
      if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) return false;
      const hit = document.elementFromPoint(x, y);
      return hit !== null && (hit === el || el.contains(hit) || hit.contains(el));
    });
  }))"""


def graph_on_screen(page: Page, timeout_ms: float) -> bool:
    """Waits (up to the timeout, while a zoom animation settles) for every asset of the group on screen."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        page.wait_for_function(NAMES_ON_SCREEN_JS, arg=list(GRAPH_ASSETS), timeout=timeout_ms)
    except PlaywrightTimeoutError:
        return False
    return True


def test_asset_graph_shows_the_roster_sync_assets(dagster_ui: DagsterUI, page: Page) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dagster_ui.url}/locations/roster_pipeline/asset-groups/roster_sync")
    expect(page.get_by_text("Asset Group in")).to_be_visible()
    for name in GRAPH_ASSETS:
        expect(shown(page, name)).to_be_visible()
    # The graph opens zoomed on roster_import; zoom out step by step until every asset is on screen.
    zoom_out = page.get_by_role("button", name="zoom_out")
    for _ in range(6):
        if graph_on_screen(page, timeout_ms=1_000):
            break
        zoom_out.click()
    assert graph_on_screen(page, timeout_ms=5_000), "the roster_sync graph does not fit the window"
    settle(page)
    save_screenshot(page, ASSET_GRAPH_PNG, readme_image=True)


def test_district_partition_page_shows_its_own_check_results(dagster_ui: DagsterUI, page: Page) -> None:
    from playwright.sync_api import expect

    run = dagster_ui.sync_run_id[:8]  # the UI shows a run by its first 8 characters

    # The partition page of checked_snapshot: the district's latest materialization, from its sync.
    page.goto(f"{dagster_ui.url}/assets/checked_snapshot?view=partitions&partition={SYNCED}")
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    expect(shown(page, f"District {SYNCED}")).to_be_visible()  # district_name metadata
    expect(shown(page, run)).to_be_visible()
    expect(shown(page, UNSYNCED)).to_be_visible()  # listed, never materialized
    expect(page.get_by_text("Missing (1)")).to_be_visible()
    settle(page)
    save_screenshot(page, "dagster_district_partition.png")

    # The Checks tab: the three blocking checks, each with this district's latest result per partition.
    page.goto(f"{dagster_ui.url}/assets/checked_snapshot?view=checks")
    for check in CHECKS:
        expect(shown(page, check)).to_be_visible()
    expect(page.get_by_text("Execution history")).to_be_visible()  # a check's detail is open
    page.get_by_role("tab", name="Partitions").last.click()  # the check's own partitions, not the asset's
    expect(shown(page, UNSYNCED)).to_be_visible()
    page.get_by_text(SYNCED, exact=True).locator("visible=true").last.click()
    expect(page.get_by_text("Latest execution")).to_be_visible()
    expect(shown(page, "within thresholds")).to_be_visible()
    # the selected district's result links to the run that synced it
    run_link = re.compile(f"^/runs/{dagster_ui.sync_run_id}")
    expect(page.get_by_role("link", name=run)).to_have_attribute("href", run_link)
    # Room for the whole detail: the navigation column folds to icons.
    page.get_by_text("Hide navigation").click()
    expect(page.get_by_text("Hide navigation")).to_be_hidden()
    settle(page)
    save_screenshot(page, DISTRICT_CHECKS_PNG, readme_image=True)


def test_readme_shows_the_pictures_this_test_takes() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    for name in (ASSET_GRAPH_PNG, DISTRICT_CHECKS_PNG):
        assert (README_IMAGES / name).is_file(), name
        assert f"](docs/images/{name})" in readme, name
