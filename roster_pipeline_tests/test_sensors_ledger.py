"""The notifications ledger and the sensor cursor, on SQLite and Postgres: the exactly-once rules; and the
control sensor's interval setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from roster_pipeline.control import store
from roster_pipeline.control.store import create_control_schema
from roster_pipeline.defs.sensors import CONTROL_SENSOR_INTERVAL_ENV, ControlCursor, build_control_sensor

KEY = "alpha:7:check_your_data"
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture()
def engine(warehouse_url: str):
    engine = sa.create_engine(warehouse_url)
    create_control_schema(engine)
    create_control_schema(engine)  # idempotent
    yield engine
    engine.dispose()


def claim(engine: sa.Engine, now: datetime, **kw: object) -> bool:
    return store.claim_notification(
        engine,
        KEY,
        district_id="alpha",
        import_id=7,
        kind="check_your_data",
        now=now,
        retry_after=timedelta(seconds=60),
        max_attempts=3,
        **kw,
    )  # type: ignore[arg-type]


def test_only_one_claim_wins_and_a_sent_email_is_never_claimed_again(engine) -> None:
    assert claim(engine, T0)
    assert not claim(engine, T0), "in flight: a second claimer loses"
    store.mark_sent(engine, KEY, "<id@x>")
    assert not claim(engine, T0 + timedelta(days=1))
    row = store.get_notification(engine, KEY)
    assert row is not None and (row.status, row.attempts, row.message_path_or_id) == ("sent", 1, "<id@x>")


def test_failed_sends_are_retried_after_the_delay_up_to_max_attempts(engine) -> None:
    assert claim(engine, T0)
    store.mark_failed(engine, KEY, "ConnectionRefusedError")
    assert not claim(engine, T0 + timedelta(seconds=30)), "not due yet"
    assert claim(engine, T0 + timedelta(seconds=61))
    store.mark_failed(engine, KEY, "ConnectionRefusedError")
    assert claim(engine, T0 + timedelta(seconds=200))
    store.mark_failed(engine, KEY, "still down")
    assert not claim(engine, T0 + timedelta(days=1)), "3 attempts: given up"
    row = store.get_notification(engine, KEY)
    assert row is not None and (row.status, row.attempts, row.last_error) == ("failed", 3, "still down")


def test_a_crash_mid_send_is_reported_stuck_and_only_an_operator_releases_it(engine) -> None:
    assert claim(engine, T0)  # ... and the process dies
    assert not claim(engine, T0 + timedelta(hours=1))
    assert [r.idempotency_key for r in store.stuck_notifications(engine, now=T0 + timedelta(hours=1))] == [
        KEY
    ]
    assert store.release_stuck(engine, KEY)
    assert claim(engine, T0 + timedelta(hours=2))


def test_cursor_round_trip_and_garbage_is_a_reset() -> None:
    cursor = ControlCursor(import_floor=12, failures="abc")
    assert ControlCursor.parse(cursor.dump()) == cursor
    assert ControlCursor.parse("not json") == ControlCursor()
    assert ControlCursor.parse(None) == ControlCursor()


def test_the_control_sensor_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONTROL_SENSOR_INTERVAL_ENV, raising=False)
    assert build_control_sensor().minimum_interval_seconds == 30
    monkeypatch.setenv(CONTROL_SENSOR_INTERVAL_ENV, "5")
    assert build_control_sensor().minimum_interval_seconds == 5
    for bad in ("soon", "0", "2.5"):
        monkeypatch.setenv(CONTROL_SENSOR_INTERVAL_ENV, bad)
        with pytest.raises(ValueError, match=CONTROL_SENSOR_INTERVAL_ENV):
            build_control_sensor()
