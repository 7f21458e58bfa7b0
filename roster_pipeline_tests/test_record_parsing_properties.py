"""Property-based tests of record parsing: whatever a SIS serves, one record never breaks a batch.

Arbitrary JSON-ish records (strings with NUL, lone surrogates, quotes and escapes; huge and odd numbers;
missing, malformed and extra fields) go through the client's de-duplication, the per-batch validation
and the staging row builder without raising, and every record ends either valid (stageable) or with an
error reject (quarantined): nothing is dropped silently.  A second property stages and publishes such
batches on both databases.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roster_pipeline.oneroster.paging import SeenRecords
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.records.unstorable import all_storable
from roster_pipeline.registry.districts import District
from roster_pipeline.validation import validate_batch
from roster_pipeline.validation.frames import frame_columns
from roster_pipeline.warehouse import TABLES, Warehouse
from roster_pipeline.warehouse.load import build_rows

SPECIALS = [
    "\x00",
    "\ud800",
    "\udce9",
    "\udfff",
    "'",
    '"',
    "\\",
    "\\u0000",
    " ",
    "",
    "\n",
    "\ufffd",
    "é",
    "𝄞",
]
ODD_NUMBERS = [10**30, -(10**30), 2**63, 2**64, -(2**63) - 1, 0, -1, 1.5, float("inf"), float("nan"), 1e308]

texts = st.lists(st.one_of(st.text(max_size=4), st.sampled_from(SPECIALS)), max_size=4).map("".join)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(ODD_NUMBERS), texts)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(texts, children, max_size=3)),
    max_leaves=6,
)
sourced_ids = st.one_of(st.text(min_size=1, max_size=6), texts, st.integers(), st.none())
statuses = st.one_of(st.sampled_from(["active", "tobedeleted", "Active", ""]), texts)
dates = st.one_of(
    st.sampled_from(["2026-08-20", "2027-02-29", "2026-08-01T12:00:00.000Z", "9999-12-31"]), texts
)


def references() -> st.SearchStrategy[Any]:
    good = st.fixed_dictionaries({"href": texts, "sourcedId": sourced_ids, "type": texts})
    return st.one_of(good, json_values)


def field_values(kind: str) -> st.SearchStrategy[Any]:
    if kind == "ref":
        return references()
    if kind == "refs":
        return st.one_of(st.lists(references(), max_size=3), json_values)
    return st.one_of(dates, texts, json_values)


def records(resource_name: str) -> st.SearchStrategy[dict[str, Any]]:
    """A record of the resource where every field may be missing, well-formed, malformed or odd."""
    fields = {c.source: field_values(c.kind) for c in frame_columns(resource_name)}
    fields.update(sourcedId=sourced_ids, status=statuses, dateLastModified=dates)
    optional = {name: strategy for name, strategy in fields.items()}
    extra = st.dictionaries(texts, json_values, max_size=2)
    return st.tuples(st.fixed_dictionaries({}, optional=optional), extra).map(
        lambda pair: {**pair[1], **pair[0]}
    )


def batches() -> st.SearchStrategy[tuple[str, list[dict[str, Any]]]]:
    names = st.sampled_from([r.name for r in RESOURCES])
    return names.flatmap(lambda name: st.tuples(st.just(name), st.lists(records(name), max_size=8)))


DISTRICT = District(
    id="springfield",
    name="Springfield",
    client_id_env="SPRINGFIELD_ID",
    client_secret_env="SPRINGFIELD_SECRET",
    api_host="sis.example.org",
    app_name="app",
    student_devices="chromebooks_only",
)


@settings(max_examples=60, deadline=None)
@given(batches())
def test_any_batch_is_validated_without_raising_and_nothing_is_dropped(
    batch: tuple[str, list[dict[str, Any]]],
) -> None:
    name, served = batch
    SeenRecords().keep_new([r for r in served if isinstance(r.get("sourcedId"), str)])  # digests never raise
    checked = validate_batch(DISTRICT, name, served)

    assert len(checked.valid) + checked.rejected == len(served)
    valid_ids = {id(r) for r in checked.valid}
    rejected = [r for r in served if id(r) not in valid_ids]
    for record in rejected:  # every record held back carries an error reject of its own (raw is a copy)
        assert any(reject.raw == record for reject in checked.rejects), record
    assert all(r.severity == "error" and r.field and r.check and r.message for r in checked.rejects)
    assert all_storable(checked.valid)  # what is staged can be stored as served
    build_rows(TABLES[name], 1, DISTRICT.id, 2027, checked.valid)  # the staging tuples build


@pytest.fixture()
def warehouse(warehouse_url: str) -> Warehouse:
    wh = Warehouse(warehouse_url)
    wh.create_schema()
    yield wh
    wh.dispose()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches())
def test_any_batch_is_staged_or_quarantined_and_publishes(
    warehouse: Warehouse, batch: tuple[str, list[dict[str, Any]]]
) -> None:
    name, served = batch
    district_id = f"d-{uuid.uuid4().hex[:8]}"  # one district per example: examples share the database
    import_id = warehouse.begin_import(district_id, "run", 2027)
    checked = validate_batch(DISTRICT, name, served)
    assert warehouse.stage(import_id, name, checked.valid) == len(checked.valid)
    warehouse.record_rejects(import_id, [*checked.rejects, *checked.warnings])
    counts = warehouse.publish(import_id)[name]

    assert counts.added + counts.tobedeleted == len(checked.valid)  # valid records have distinct ids
    assert len(warehouse.rejects(import_id, severity="error")) == len(checked.rejects)
