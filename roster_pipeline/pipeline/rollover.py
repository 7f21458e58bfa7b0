"""The rollover policy: what a district's registry ``rollover`` settings mean on a given day.

Around the new school year an SIS changes more than in the rest of the year together (new classes and
enrollments, graduates leaving, half-built schedules), so each district says in the registry how its
imports behave then:

* ``mode: pause`` — no imports from the rollover ``date`` until the new year's ``first_day`` (exclusive:
  the first day imports again).  An admin lets one run through with the run tag
  ``roster/rollover_override=<name>`` (a review ``reprocess`` also passes), or ends the pause for every run
  by moving ``first_day`` (or setting ``mode``) in the registry and reloading the code location;
* ``mode: additions_only`` — in the same window imports add and update but never delete (neither
  records that vanished from a full pull nor records served ``tobedeleted``);
* ``expected_change_window`` — while ``start <= today <= end`` the ``relaxed_thresholds`` replace the
  district's thresholds (field by field); the day after ``end`` the normal ones apply again.  Without a
  window, relaxed thresholds apply inside the rollover window.

``MM-DD`` settings recur every year: the rollover date is its latest occurrence on or before today, the
first day the next occurrence after that; a window is the occurrence of ``start`` on or before today up
to the next ``end``.  So a window may cross New Year, and July's rollover finds its September first day.

``rollover_policy`` is pure (district, date) → policy.  A run's date is the district's local today, or
the run tag ``roster/as_of=YYYY-MM-DD`` (replaying a past day, tests); the tags are read here only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime

from roster_pipeline.pipeline.run_tags import AS_OF_TAG, REVIEW_ACTION_TAG, ROLLOVER_OVERRIDE_TAG
from roster_pipeline.registry.districts import District, ThresholdOverrides, resolve_month_day


class RolloverConfigError(ValueError):
    """The district's rollover settings cannot be applied (the message names the district and field)."""


@dataclass(frozen=True)
class RolloverPolicy:
    """How imports of one district behave on ``today``; every field is derived from the registry."""

    district_id: str
    today: date
    mode: str
    rollover_date: date  # the latest rollover date on or before today
    first_day: date | None  # the new school year's first day after rollover_date
    in_rollover_window: bool  # rollover_date <= today < first_day
    change_window: tuple[date, date] | None  # the occurrence of expected_change_window around today
    in_change_window: bool
    block_reason: str | None  # pause mode inside the window: why a run is refused
    additions_only: bool
    relaxed: ThresholdOverrides | None  # thresholds replacing the district's today, or None (strict)
    relaxed_until: date | None = None
    overridden_by: str | None = None  # who let a run through a pause (run tag)

    @property
    def relaxed_label(self) -> str | None:
        """The UI's words for the thresholds in force, e.g. 'relaxed thresholds (rollover window until 2027-09-15)'."""
        if self.relaxed is None:
            return None
        return (
            f"relaxed thresholds (rollover window until {self.relaxed_until.isoformat()})"
            if self.relaxed_until
            else "relaxed thresholds (rollover window)"
        )

    def metadata(self) -> dict[str, str | bool]:
        """Dagster metadata of the import and the checks."""
        out: dict[str, str | bool] = {
            "rollover_mode": self.mode,
            "as_of": self.today.isoformat(),
            "in_rollover_window": self.in_rollover_window,
            "additions_only": self.additions_only,
            "thresholds": self.relaxed_label or "normal",
        }
        if self.in_rollover_window:
            out["rollover_window"] = (
                f"{self.rollover_date.isoformat()} → {self.first_day.isoformat() if self.first_day else '?'}"
            )
        if self.overridden_by:
            out["rollover_override"] = self.overridden_by
        return out


def _latest_on_or_before(setting: str, today: date) -> date:
    candidate = resolve_month_day(setting, today.year)
    if candidate > today and len(setting) == 5:  # MM-DD: last year's occurrence
        candidate = resolve_month_day(setting, today.year - 1)
    return candidate


def _next_on_or_after(setting: str, anchor: date, strictly: bool) -> date:
    candidate = resolve_month_day(setting, anchor.year)
    if len(setting) == 5 and (candidate < anchor or (strictly and candidate == anchor)):
        candidate = resolve_month_day(setting, anchor.year + 1)
    return candidate


def _block_reason(district: District, today: date, start: date, first_day: date) -> str:
    return (
        f"district {district.id!r} is paused for the school-year rollover (rollover.mode: pause): no imports from "
        f"the rollover date {start.isoformat()} until the new school year's first day {first_day.isoformat()} "
        f"(today is {today.isoformat()}). To import anyway, launch the run with the tag "
        f"{ROLLOVER_OVERRIDE_TAG}=<your name> (Dagster launchpad, or `roster-pipeline backfill --districts "
        f"{district.id} --rollover-override NAME`); to end the pause for every run, move rollover.first_day or set "
        "rollover.mode in the district registry and reload the code location"
    )


def rollover_policy(district: District, today: date) -> RolloverPolicy:
    """The district's rollover policy on ``today`` (its local date). Pure: no clock, no database."""
    settings = district.rollover
    if settings.mode != "none" and settings.first_day is None:
        raise RolloverConfigError(
            f"district {district.id!r}: rollover.mode {settings.mode!r} needs rollover.first_day (the new school "
            "year's first day, 'MM-DD'), which ends the window started by rollover.date"
        )
    start = _latest_on_or_before(settings.date, today)
    first_day = (
        None if settings.first_day is None else _next_on_or_after(settings.first_day, start, strictly=True)
    )
    in_rollover = first_day is not None and start <= today < first_day

    window: tuple[date, date] | None = None
    relaxed_until: date | None
    if settings.expected_change_window is not None:
        w_start = _latest_on_or_before(settings.expected_change_window.start, today)
        window = (w_start, _next_on_or_after(settings.expected_change_window.end, w_start, strictly=False))
        in_change = window[0] <= today <= window[1]
        relaxed_until = window[1]
    else:
        in_change = in_rollover
        relaxed_until = first_day
    relaxed = settings.relaxed_thresholds if in_change else None

    return RolloverPolicy(
        district_id=district.id,
        today=today,
        mode=settings.mode,
        rollover_date=start,
        first_day=first_day,
        in_rollover_window=in_rollover,
        change_window=window,
        in_change_window=in_change,
        block_reason=_block_reason(district, today, start, first_day)
        if in_rollover and settings.mode == "pause" and first_day is not None
        else None,
        additions_only=in_rollover and settings.mode == "additions_only",
        relaxed=relaxed,
        relaxed_until=relaxed_until if relaxed is not None else None,
    )


def run_date(district: District, tags: Mapping[str, str], now: datetime | None = None) -> date:
    """The day a run counts as: the ``roster/as_of`` tag, else today in the district's timezone."""
    text = tags.get(AS_OF_TAG)
    if text:
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            raise RolloverConfigError(
                f"run tag {AS_OF_TAG}={text!r} is not a date (expected YYYY-MM-DD)"
            ) from None
    return (now or datetime.now(district.zone)).astimezone(district.zone).date()


def policy_for_run(
    district: District, tags: Mapping[str, str], now: datetime | None = None
) -> RolloverPolicy:
    """The policy of one run: its date from the tags, and a pause lifted by an override or a reprocess."""
    policy = rollover_policy(district, run_date(district, tags, now))
    if policy.block_reason is None:
        return policy
    who = (tags.get(ROLLOVER_OVERRIDE_TAG) or "").strip()
    if who:
        return replace(policy, block_reason=None, overridden_by=who)
    if tags.get(REVIEW_ACTION_TAG) == "reprocess":
        return replace(policy, block_reason=None, overridden_by="review reprocess")
    return policy


__all__ = [
    "AS_OF_TAG",
    "ROLLOVER_OVERRIDE_TAG",
    "RolloverConfigError",
    "RolloverPolicy",
    "policy_for_run",
    "rollover_policy",
    "run_date",
]
