"""The import of one district, step by step and free of Dagster: may it run now (admission), in which mode
(sync_mode), the sync steps (sync), the checks between staging and publishing (snapshot_checks), the new
school year (rollover, run_policy), and the run tags every step reads (run_tags)."""
