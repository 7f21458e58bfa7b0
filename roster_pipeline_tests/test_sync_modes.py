"""Full and delta syncs end to end: the real simulator over HTTP → the Dagster assets → the warehouse.

What a delta must do: ask every collection for ``dateLastModified>'<start of the last published import
minus the overlap>'``, never delete what it did not see (a vanished student stays alive until the next
full), apply ``tobedeleted``, fall back to full when nothing was published before, and cost about the
share of records that changed.  Every test runs on SQLite and Postgres (``warehouse_url``).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import dagster as dg
import pytest
import sqlalchemy as sa

from roster_pipeline.pipeline.run_tags import SYNC_MODE_TAG
from roster_pipeline.pipeline.sync_mode import ModeRequest, requested_mode
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.simulator import SimulatorServer, Tenant, mutations
from roster_pipeline.warehouse import Warehouse

from .pipeline_helpers import materialization_metadata, monkeypatch_environ, sync, write_registry

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

OVERLAP_MINUTES = 45


@pytest.fixture()
def server(alpha_template) -> Iterator[SimulatorServer]:
    with SimulatorServer(
        [Tenant("alpha", "alpha-client", "alpha-very-secret-1", copy.deepcopy(alpha_template))]
    ) as s:
        yield s


@pytest.fixture()
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as test_instance:
        yield test_instance


@pytest.fixture()
def setup(server: SimulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str):
    path = tmp_path / "districts.yaml"
    registry = write_registry(
        path,
        server,
        monkeypatch_environ(monkeypatch),
        ["alpha"],
        schedule={"delta_overlap_minutes": OVERLAP_MINUTES},
    )
    return registry, path, warehouse_url


def data_filters(server: SimulatorServer) -> dict[str, set[str | None]]:
    """The filter each collection was asked with (None: unfiltered), from the simulator's request log."""
    out: dict[str, set[str | None]] = {}
    for r in server.requests:
        if "/ims/oneroster/" not in r.path or r.status != 200:
            continue
        query = parse_qs(r.query)
        if query.get("filter", [""])[0].startswith("type="):  # the school-year lookup of roster_import
            continue
        if query.get("limit") == ["1"] and "filter" not in query:  # a delta's count probe (roster_import)
            continue
        out.setdefault(r.path.rsplit("/", 1)[-1], set()).add(query.get("filter", [None])[0])
    return out


def user_deleted_at(url: str, district_id: str, ids: set[str]) -> dict[str, object]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT sourced_id, deleted_at FROM users WHERE district_id = :d"), {"d": district_id}
        ).all()
    engine.dispose()
    return {sid: deleted for sid, deleted in rows if sid in ids}


def fetched(result: dg.ExecuteInProcessResult) -> tuple[int, int]:
    """(records fetched, HTTP requests) over every resource asset of a run."""
    metas = [materialization_metadata(result, r.name) for r in RESOURCES]
    return sum(m["rows_fetched"] for m in metas), sum(m["requests"] for m in metas)


@pytest.mark.parametrize("alpha_template", ["small"], indirect=True)  # its 1% of users is someone
def test_delta_asks_for_changes_since_the_last_import_and_never_deletes_what_it_did_not_see(
    server: SimulatorServer, setup, instance
) -> None:
    registry, path, url = setup
    first = sync(registry, path, url, "alpha", instance, sync_mode="full")
    assert first.success
    warehouse = Warehouse(url)
    base = warehouse.last_published_import("alpha")
    assert base is not None

    district = server.tenant("alpha").district
    changed = mutations.change_users(district, percent=1, seed=3)
    vanished = mutations.remove_students(district, count=3, seed=4, mode="vanish")
    withdrawn = mutations.remove_students(district, count=2, seed=5, mode="tobedeleted")
    server.clear_requests()

    delta = sync(registry, path, url, "alpha", instance, sync_mode="delta")
    assert delta.success
    started = base.started_at if base.started_at.tzinfo else base.started_at.replace(tzinfo=dt.UTC)
    since = (started - dt.timedelta(minutes=OVERLAP_MINUTES)).astimezone(dt.UTC)
    expected_filter = f"dateLastModified>'{since.strftime('%Y-%m-%dT%H:%M:%S')}"
    filters = data_filters(server)
    assert set(filters) >= {
        "orgs",
        "academicSessions",
        "courses",
        "classes",
        "users",
        "enrollments",
        "demographics",
    }
    for collection, seen in filters.items():
        assert len(seen) == 1 and next(iter(seen)).startswith(expected_filter), (collection, seen)
    probes = [r.path.rsplit("/", 1)[-1] for r in server.requests if parse_qs(r.query).get("limit") == ["1"]]
    assert sorted(probes) == sorted(filters)  # one count request per collection, nothing more

    opened = materialization_metadata(delta, "roster_import")
    assert opened["sync_mode"] == "delta" and opened["delta_base_import_id"] == base.import_id
    assert opened["since"] == since.isoformat()
    users = materialization_metadata(delta, "users")
    assert (users["sync_mode"], users["since"]) == ("delta", since.isoformat())
    gone = vanished.changes["users"].removed
    retired = withdrawn.changes["users"].tobedeleted
    updated = {
        *changed.changes["users"].updated,
        *vanished.changes["users"].updated,
        *withdrawn.changes["users"].updated,
    }
    assert users["tobedeleted"] == len(retired)
    assert users["deleted"] == len(retired)  # the tobedeleted ones only, none of the vanished
    assert users["updated"] == len(updated - gone - retired - withdrawn.changes["users"].removed)
    assert warehouse.get_import(opened["import_id"]).sync_mode == "delta"

    after_delta = user_deleted_at(url, "alpha", gone | retired)
    assert all(after_delta[sid] is None for sid in gone), "a delta deleted a student it did not see"
    assert all(after_delta[sid] is not None for sid in retired), "tobedeleted not applied in a delta"

    server.clear_requests()
    full = sync(registry, path, url, "alpha", instance, sync_mode="full")
    assert full.success
    assert all(f is None for seen in data_filters(server).values() for f in seen)
    assert materialization_metadata(full, "users")["deleted"] == len(gone)  # the full pull infers them
    after_full = user_deleted_at(url, "alpha", gone)
    assert all(after_full[sid] is not None for sid in gone)


def test_delta_without_a_published_import_falls_back_to_full_and_says_so(
    server: SimulatorServer, setup, instance
) -> None:
    registry, path, url = setup
    result = sync(registry, path, url, "alpha", instance, sync_mode="delta")
    assert result.success
    opened = materialization_metadata(result, "roster_import")
    assert opened["sync_mode"] == "full" and opened["sync_mode_requested"] == "delta (tag)"
    assert "falling back to full" in opened["sync_mode_fallback"]
    assert all(f is None for seen in data_filters(server).values() for f in seen)
    assert materialization_metadata(result, "users")["sync_mode"] == "full"
    assert Warehouse(url).get_import(opened["import_id"]).sync_mode == "full"


@pytest.mark.parametrize("alpha_template", ["small"], indirect=True)  # 1% of a tiny district is no record
def test_a_delta_with_one_percent_changed_does_about_one_percent_of_the_work(
    server: SimulatorServer, setup, instance
) -> None:
    registry, path, url = setup
    full = sync(registry, path, url, "alpha", instance, sync_mode="full")
    assert full.success
    mutations.change_users(server.tenant("alpha").district, percent=1, seed=9)
    delta = sync(registry, path, url, "alpha", instance, sync_mode="delta")
    assert delta.success

    full_records, full_requests = fetched(full)
    delta_records, delta_requests = fetched(delta)
    users = materialization_metadata(delta, "users")
    assert users["updated"] == users["rows_fetched"] > 0  # exactly the changed users came back
    assert delta_records <= 0.03 * full_records, (delta_records, full_records)
    assert delta_requests <= len(RESOURCES) + 2  # one page per resource (users: at most two)
    assert delta_requests < full_requests


def test_the_mode_comes_from_the_tag_else_the_config_else_the_plan_in_local_time(setup) -> None:
    registry, _, _ = setup
    alpha = registry.get("alpha").model_copy(update={"timezone": "America/Los_Angeles"})
    # Monday 2026-11-30 05:00 UTC is still Sunday 21:00 in Los Angeles: the weekly full day.
    monday_utc = dt.datetime(2026, 11, 30, 5, 0, tzinfo=dt.UTC)
    assert requested_mode(alpha, {}, None, monday_utc) == ModeRequest("full", "plan")
    assert requested_mode(alpha, {}, None, monday_utc + dt.timedelta(hours=9)) == ModeRequest("delta", "plan")
    assert requested_mode(alpha, {}, "delta", monday_utc) == ModeRequest("delta", "config")
    assert requested_mode(alpha, {SYNC_MODE_TAG: "full"}, "delta", monday_utc) == ModeRequest("full", "tag")
    assert requested_mode(
        alpha, {"roster/review_action": "reprocess"}, None, monday_utc + dt.timedelta(hours=9)
    ) == ModeRequest("full", "review")
    with pytest.raises(ValueError, match="sync mode must be 'full' or 'delta'"):
        requested_mode(alpha, {SYNC_MODE_TAG: "incremental"})


def test_the_launchpad_config_sets_the_mode_when_no_tag_does(
    server: SimulatorServer, setup, instance
) -> None:
    registry, path, url = setup
    assert sync(registry, path, url, "alpha", instance, sync_mode="full").success
    from roster_pipeline.defs.assets import build_roster_assets
    from roster_pipeline.defs.partitions import district_partitions
    from roster_pipeline.defs.resources import DistrictRegistryResource, WarehouseResource

    result = dg.materialize(
        build_roster_assets(district_partitions(registry)),
        partition_key="alpha",
        instance=instance,
        run_config={"ops": {"roster_import": {"config": {"sync_mode": "delta"}}}},
        resources={
            "warehouse": WarehouseResource(database_url=url),
            "registry": DistrictRegistryResource(districts_file=str(path)),
        },
    )
    opened = materialization_metadata(result, "roster_import")
    assert (opened["sync_mode"], opened["sync_mode_requested"]) == ("delta", "delta (config)")


def test_a_delta_that_would_miss_a_mass_vanish_runs_full_and_is_held(
    server: SimulatorServer, setup, instance
) -> None:
    """The UI walkthrough of docs/operations.md: wipe 90% of enrollments, sync again on a delta day: held, not published.

    Before the count probe the delta fetched 0 enrollments, passed every check and published.
    """
    registry, path, url = setup
    assert sync(registry, path, url, "alpha", instance, sync_mode="full").success
    warehouse = Warehouse(url)
    before = warehouse.current_counts("alpha")
    mutations.wipe_enrollments(server.tenant("alpha").district, percent=90, seed=1)

    result = sync(registry, path, url, "alpha", instance, sync_mode="delta")

    opened = materialization_metadata(result, "roster_import")
    assert (opened["sync_mode"], opened["sync_mode_requested"]) == ("full", "delta (tag)")
    assert "enrollments: the SIS serves" in opened["sync_mode_fallback"]
    assert "users" not in opened["sync_mode_fallback"]  # untouched collections are not named
    assert materialization_metadata(result, "enrollments")["deleted"] > 0.85 * before["enrollments"]
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert "change_thresholds" in failed
    assert not result.asset_materializations_for_node("published_roster")
    assert warehouse.get_import(opened["import_id"]).status == "held"
    assert warehouse.current_counts("alpha") == before


def test_a_delta_whose_counts_are_within_thresholds_stays_a_delta_and_says_what_it_checked(
    server: SimulatorServer, setup, instance
) -> None:
    registry, path, url = setup
    assert sync(registry, path, url, "alpha", instance, sync_mode="full").success
    mutations.remove_students(server.tenant("alpha").district, count=3, seed=4, mode="vanish")
    result = sync(registry, path, url, "alpha", instance, sync_mode="delta")
    assert result.success
    opened = materialization_metadata(result, "roster_import")
    assert opened["sync_mode"] == "delta" and "sync_mode_fallback" not in opened
    assert opened["vanish_probe"].startswith("vanish probe: every collection's count is within")


def test_the_count_probe_escalates_only_beyond_the_deletion_bounds_and_names_uncounted_collections(
    setup,
) -> None:
    from roster_pipeline.pipeline.sync_mode import ModeDecision, escalate_on_vanish

    registry, _, _ = setup
    alpha = registry.get("alpha")  # max_deleted_pct 10, min_changes 25 (the defaults)
    delta = ModeDecision(
        ModeRequest("delta", "plan"), "delta", since=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), base_import_id=7
    )
    published = {"users": 1000, "enrollments": 100, "orgs": 5}

    def served(counts: dict[str, int | None]):
        return lambda collection: counts.get(collection, published.get(collection, 0))

    within = escalate_on_vanish(delta, alpha, published, served({"users": 901, "enrollments": 76}))
    assert (
        within.mode == "delta" and within.fallback_reason is None
    )  # 9.9% of users; 24 enrollments < min_changes
    beyond = escalate_on_vanish(delta, alpha, published, served({"users": 899}))
    assert beyond.mode == "full" and beyond.since is None
    assert "users: the SIS serves 899, 1,000 are published (10.1% fewer" in beyond.fallback_reason
    assert beyond.requested == delta.requested
    uncounted = escalate_on_vanish(delta, alpha, published, served({"users": None}))
    assert uncounted.mode == "delta"
    assert "no count for users" in uncounted.vanish_probe and "next full sync" in uncounted.vanish_probe
    full = ModeDecision(ModeRequest("full", "plan"), "full")
    assert escalate_on_vanish(full, alpha, published, served({"users": 0})) is full
