"""Bulk loading: COPY really is the Postgres path, and a 1M-enrollment figure (``-m benchmark``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from roster_pipeline.warehouse import Warehouse

YEAR = 2027


def synthetic_enrollments(count: int, start: int = 0, role_every: int = 0) -> Iterator[dict[str, Any]]:
    """Enrollments shaped like an Infinite Campus page; ``role_every=k`` changes every k-th record."""
    for n in range(start, start + count):
        yield {
            "sourcedId": f"enr-{n:08d}",
            "status": "active",
            "dateLastModified": "2026-11-01T12:00:00.000Z",
            "class": {"href": f"/classes/cls-{n // 25}", "sourcedId": f"cls-{n // 25}", "type": "class"},
            "user": {"href": f"/users/usr-{n // 6}", "sourcedId": f"usr-{n // 6}", "type": "user"},
            "school": {"href": f"/orgs/sch-{n % 40}", "sourcedId": f"sch-{n % 40}", "type": "org"},
            "role": "teacher" if role_every and n % role_every == 0 else "student",
            "primary": "false",
            "beginDate": "2026-08-20",
            "endDate": "2027-06-05",
        }


def batched(records: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@pytest.mark.postgres
def test_postgres_staging_uses_copy_not_inserts(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wh = Warehouse(postgres_url)
    wh.create_schema()
    statements: list[str] = []
    sa.event.listen(wh.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    copies: list[str] = []
    real_copy = psycopg.Cursor.copy

    def spy(self: psycopg.Cursor, statement: Any, *args: Any, **kwargs: Any) -> Any:
        copies.append(str(statement))
        return real_copy(self, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", spy)
    import_id = wh.begin_import("springfield", "run", YEAR)
    started = time.perf_counter()
    for batch in batched(synthetic_enrollments(50_000), 10_000):
        wh.stage(import_id, "enrollments", batch)
    staged_seconds = time.perf_counter() - started
    assert len(copies) == 5 and all(c.startswith(f"COPY stg_enrollments_{import_id} (") for c in copies)
    assert not [s for s in statements if "INSERT INTO stg_" in s or 'INSERT INTO "stg_' in s]
    counts = wh.publish(import_id)["enrollments"]
    assert (counts.fetched, counts.added) == (50_000, 50_000)
    assert wh.current_counts("springfield")["enrollments"] == 50_000
    # Generous bound (a laptop does this in about a second); row-by-row INSERTs would take far longer.
    assert staged_seconds < 20, f"staging 50k rows took {staged_seconds:.1f}s"
    wh.dispose()


@pytest.mark.benchmark
@pytest.mark.postgres
def test_benchmark_one_million_enrollments(postgres_url: str) -> None:
    total, batch_size = 1_000_000, 50_000
    wh = Warehouse(postgres_url)
    wh.create_schema()
    figures: list[str] = []

    def one_import(label: str, role_every: int = 0) -> None:
        import_id = wh.begin_import("bench", label, YEAR)
        t0 = time.perf_counter()
        for batch in batched(synthetic_enrollments(total, role_every=role_every), batch_size):
            wh.stage(import_id, "enrollments", batch)
        t1 = time.perf_counter()
        diff = wh.diff(import_id, "enrollments")
        t2 = time.perf_counter()
        published = wh.publish(import_id)["enrollments"]
        t3 = time.perf_counter()
        assert published == diff
        figures.append(
            f"{label:<22} stage {t1 - t0:6.1f}s  diff {t2 - t1:5.1f}s  publish {t3 - t2:5.1f}s  "
            f"total {t3 - t0:6.1f}s  ({total / (t3 - t0):,.0f} rec/s)  {published.as_dict()}"
        )

    # Build the records once outside the timing, to report the flatten/COPY-free floor of generation.
    t = time.perf_counter()
    for _ in batched(synthetic_enrollments(total), batch_size):
        pass
    figures.append(f"{'generate records only':<22} {time.perf_counter() - t:6.1f}s")
    one_import("first (all added)")
    one_import("second (unchanged)")
    one_import("third (1% updated)", role_every=100)
    print("\n1,000,000 enrollments on Postgres:\n  " + "\n  ".join(figures))
    wh.dispose()


@pytest.mark.postgres
def test_postgres_staging_index_is_built_after_the_load_not_maintained_during_it(postgres_url: str) -> None:
    wh = Warehouse(postgres_url)
    wh.create_schema()
    import_id = wh.begin_import("shelbyville", "run", YEAR)
    table = f"stg_enrollments_{import_id}"

    def indexes() -> list[str]:
        with wh.engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :t"), {"t": table}
            )
            return [name for name in found.scalars() if not name.endswith("_pkey")]  # row_id: append-only

    for batch in batched(synthetic_enrollments(3_000), 1_000):
        wh.stage(import_id, "enrollments", batch)
    assert indexes() == [], "the COPY must not maintain the index row by row"
    changes = wh.diff(import_id, "enrollments")  # the resource is loaded: index, statistics, classification
    assert indexes() == [f"ix_{table}_sourced"]
    assert changes.added == 3_000
    assert wh.publish(import_id)["enrollments"].added == 3_000
    wh.dispose()


@pytest.mark.postgres
def test_a_large_publish_leaves_planner_statistics_on_the_published_table(postgres_url: str) -> None:
    """Without them the next import's anti-joins took the fresh published table for one row (minutes)."""
    wh = Warehouse(postgres_url)
    wh.create_schema()

    def analysed() -> bool:
        with wh.engine.connect() as conn:
            return bool(
                conn.execute(
                    sa.text(
                        "SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL FROM pg_stat_user_tables "
                        "WHERE relname = 'enrollments'"
                    )
                ).scalar()
            )

    import_id = wh.begin_import("ogdenville", "run", YEAR)
    for batch in batched(synthetic_enrollments(12_000), 6_000):
        wh.stage(import_id, "enrollments", batch)
    assert not analysed()
    assert wh.publish(import_id)["enrollments"].added == 12_000
    assert analysed()
    wh.dispose()
