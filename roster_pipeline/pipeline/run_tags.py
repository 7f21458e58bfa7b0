"""Every run tag the pipeline reads or writes, and the sync modes, in one place.

Tags are how a run says what it is (which district, which mode, which review action) to the assets, the
sensors, the UI's Runs list and the CLI; a tag spelled twice drifts. Dagster's own tags that the pipeline
relies on are here too, so a reader sees the whole vocabulary at once. No imports: every layer may use it.
"""

from __future__ import annotations

from typing import Literal

#: A run's sync mode: ``full`` pulls every record (and may infer deletions), ``delta`` only what changed.
SyncMode = Literal["full", "delta"]
SYNC_MODES: tuple[SyncMode, ...] = ("full", "delta")

# What the run is for (set by schedules, backfills, sensors, the CLI; shown in the UI's Runs list).
DISTRICT_TAG = "roster/district"
DISTRICT_NAME_TAG = "roster/district_name"  # partitions are ids; the runs list shows the name next to them
SCHEDULE_TAG = "roster/schedule"
BACKFILL_TAG = "roster/backfill"
CSV_BUNDLE_TAG = "roster/csv_bundle"  # the bundle file a drop-folder run imports

# How the run imports.
SYNC_MODE_TAG = "roster/sync_mode"  # full | delta; else the run config, else the district's plan
SCHOOL_YEAR_TAG = "roster/school_year"  # set by the schedules when the registry pins a year
AS_OF_TAG = "roster/as_of"  # the day a run counts as for the rollover policy (YYYY-MM-DD)
ROLLOVER_OVERRIDE_TAG = "roster/rollover_override"  # who let this run through a rollover pause

# Review actions launched from the UI jobs or the CLI.
REVIEW_ACTION_TAG = "roster/review_action"  # approve | reject | reprocess | undo
REVIEW_ACTION_ID_TAG = "roster/review_action_id"

# Dagster's own tags the pipeline reads.
PARTITION_TAG = "dagster/partition"
ROOT_RUN_TAG = "dagster/root_run_id"
WILL_RETRY_TAG = "dagster/will_retry"  # a failed run that Dagster will retry is not the import's end
