"""The rollover policy as a pure function of (district settings, date): windows, modes, relaxed thresholds."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from roster_pipeline.pipeline.rollover import RolloverConfigError, policy_for_run, rollover_policy, run_date
from roster_pipeline.pipeline.run_tags import AS_OF_TAG, ROLLOVER_OVERRIDE_TAG
from roster_pipeline.registry.districts import District, ThresholdOverrides

RELAXED = {"max_deleted_pct": 60.0, "max_updated_pct": 100.0}


def district(**rollover: Any) -> District:
    return District.model_validate(
        {
            "id": "springfield",
            "name": "Springfield",
            "api_host": "sis.example.org",
            "app_name": "springfield",
            "client_id_env": "SPRINGFIELD_KEY",
            "client_secret_env": "SPRINGFIELD_SECRET",
            "timezone": "America/Chicago",
            "rollover": rollover,
        }
    )


PAUSE = district(date="07-01", first_day="08-20", mode="pause")
ADDITIONS = district(
    date="07-01",
    first_day="08-20",
    mode="additions_only",
    expected_change_window={"start": "08-01", "end": "09-15"},
    relaxed_thresholds=RELAXED,
)


@pytest.mark.parametrize(
    ("today", "blocked"),
    [
        (date(2027, 6, 30), False),  # the day before the rollover date
        (date(2027, 7, 1), True),  # the rollover date itself
        (date(2027, 8, 19), True),  # the day before the first day
        (date(2027, 8, 20), False),  # the first day imports again
        (date(2028, 3, 1), False),
    ],
)
def test_pause_blocks_from_the_rollover_date_until_the_first_day(today: date, blocked: bool) -> None:
    policy = rollover_policy(PAUSE, today)
    assert (policy.block_reason is not None) is blocked
    assert policy.in_rollover_window is blocked
    assert not policy.additions_only


def test_the_block_reason_names_district_dates_and_how_to_override() -> None:
    reason = rollover_policy(PAUSE, date(2027, 7, 14)).block_reason or ""
    for needle in (
        "'springfield'",
        "2027-07-01",
        "2027-08-20",
        "2027-07-14",
        ROLLOVER_OVERRIDE_TAG,
        "first_day",
        "reload the code location",
    ):
        assert needle in reason


def test_additions_only_inside_the_window_only() -> None:
    assert rollover_policy(ADDITIONS, date(2027, 7, 1)).additions_only
    assert rollover_policy(ADDITIONS, date(2027, 8, 19)).additions_only
    assert not rollover_policy(ADDITIONS, date(2027, 8, 20)).additions_only
    assert not rollover_policy(ADDITIONS, date(2027, 6, 30)).additions_only
    assert rollover_policy(ADDITIONS, date(2027, 7, 10)).block_reason is None


@pytest.mark.parametrize(
    ("today", "relaxed"),
    [
        (date(2027, 7, 31), False),
        (date(2027, 8, 1), True),
        (date(2027, 9, 15), True),  # the end day is inside
        (date(2027, 9, 16), False),  # automatically strict again the day after
        (date(2028, 1, 10), False),
    ],
)
def test_relaxed_thresholds_inside_the_expected_change_window(today: date, relaxed: bool) -> None:
    policy = rollover_policy(ADDITIONS, today)
    assert (policy.relaxed == ThresholdOverrides(**RELAXED)) is relaxed
    assert policy.in_change_window is relaxed
    if relaxed:
        assert policy.relaxed_label == "relaxed thresholds (rollover window until 2027-09-15)"
        assert policy.metadata()["thresholds"] == policy.relaxed_label
    else:
        assert policy.relaxed is None and policy.metadata()["thresholds"] == "normal"


def test_a_window_across_new_year_and_a_first_day_in_the_next_calendar_year() -> None:
    southern = district(
        date="12-01",
        first_day="02-01",
        mode="pause",
        expected_change_window={"start": "12-15", "end": "01-31"},
        relaxed_thresholds=RELAXED,
    )
    for today in (date(2027, 12, 1), date(2027, 12, 31), date(2028, 1, 31)):
        policy = rollover_policy(southern, today)
        assert policy.block_reason is not None, today
        assert (policy.rollover_date, policy.first_day) == (date(2027, 12, 1), date(2028, 2, 1))
    assert rollover_policy(southern, date(2028, 1, 5)).relaxed is not None
    assert rollover_policy(southern, date(2028, 1, 5)).change_window == (
        date(2027, 12, 15),
        date(2028, 1, 31),
    )
    assert rollover_policy(southern, date(2028, 2, 1)).block_reason is None
    assert rollover_policy(southern, date(2028, 2, 1)).relaxed is None
    assert rollover_policy(southern, date(2027, 11, 30)).block_reason is None


def test_full_dates_apply_to_that_year_only() -> None:
    once = district(date="2027-06-20", first_day="2027-08-25", mode="pause")
    assert rollover_policy(once, date(2027, 7, 1)).block_reason is not None
    assert rollover_policy(once, date(2028, 7, 1)).block_reason is None


def test_without_a_change_window_relaxed_thresholds_follow_the_rollover_window() -> None:
    d = district(date="07-01", first_day="08-20", mode="none", relaxed_thresholds=RELAXED)
    assert rollover_policy(d, date(2027, 7, 5)).relaxed is not None
    assert rollover_policy(d, date(2027, 7, 5)).relaxed_until == date(2027, 8, 20)
    assert rollover_policy(d, date(2027, 8, 20)).relaxed is None
    assert rollover_policy(d, date(2027, 7, 5)).block_reason is None  # mode none never blocks


def test_mode_none_default_does_nothing() -> None:
    policy = rollover_policy(district(), date(2027, 7, 1))
    assert (policy.block_reason, policy.additions_only, policy.relaxed) == (None, False, None)


def test_a_mode_without_first_day_is_a_clear_error() -> None:
    with pytest.raises(RolloverConfigError, match="rollover.mode 'pause' needs rollover.first_day"):
        rollover_policy(district(mode="pause"), date(2027, 7, 1))


def test_leap_day_settings_resolve_in_common_years() -> None:
    d = district(date="02-29", first_day="03-10", mode="pause")
    assert rollover_policy(d, date(2027, 3, 1)).rollover_date == date(2027, 2, 28)
    assert rollover_policy(d, date(2028, 3, 1)).rollover_date == date(2028, 2, 29)


def test_run_date_is_the_as_of_tag_or_the_districts_local_today() -> None:
    assert run_date(PAUSE, {AS_OF_TAG: "2027-07-04"}) == date(2027, 7, 4)
    # 03:00 UTC on 1 July is still 30 June in Chicago
    assert run_date(PAUSE, {}, now=datetime(2027, 7, 1, 3, 0, tzinfo=UTC)) == date(2027, 6, 30)
    with pytest.raises(RolloverConfigError, match="not a date"):
        run_date(PAUSE, {AS_OF_TAG: "next tuesday"})


def test_an_override_tag_or_a_review_reprocess_lifts_the_pause_for_that_run() -> None:
    tags = {AS_OF_TAG: "2027-07-04"}
    assert policy_for_run(PAUSE, tags).block_reason is not None
    lifted = policy_for_run(PAUSE, {**tags, ROLLOVER_OVERRIDE_TAG: "Dana Admin"})
    assert lifted.block_reason is None and lifted.overridden_by == "Dana Admin"
    assert lifted.metadata()["rollover_override"] == "Dana Admin"
    assert policy_for_run(PAUSE, {**tags, "roster/review_action": "reprocess"}).block_reason is None
    assert policy_for_run(PAUSE, {**tags, ROLLOVER_OVERRIDE_TAG: "  "}).block_reason is not None
