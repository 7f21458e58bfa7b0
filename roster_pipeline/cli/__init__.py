"""The `roster-pipeline` command: the dispatcher (main) and one module per command that is not a package
of its own (demo, review, backfill; the simulator and the benchmark live in their packages)."""

from roster_pipeline.cli.main import main

__all__ = ["main"]
