"""What `roster-pipeline demo --once` prints while its in-process Dagster runs go: INFO and up, and an
expected hold told in one line.

The default console logger of ``execute_in_process`` prints every Dagster event at DEBUG (run start,
resource init, handled outputs...), which buried the demo's own counts, and a held import (blocking
checks failed: the pipeline working as designed) printed Dagster's step and run failure with their full
stack traces.  The demo prints its own outcome line for a hold, so here the failure of a blocking check
keeps its first line and a plain word on what it means; any other error keeps its stack trace.
"""

from __future__ import annotations

import logging
import sys

import dagster as dg

CHECK_FAILED = "DagsterAssetCheckFailedError"
HELD = "blocking checks failed: the import is held for review, nothing was published"

# run_config for execute_in_process with this logger
RUN_CONFIG: dict[str, object] = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


class ExpectedHoldFilter(logging.Filter):
    """Shortens the failure events of a held import (a failed blocking check) to one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if CHECK_FAILED in message:
            first = message.split("\n", 1)[0].rstrip()
            record.msg, record.args = f"{first} ({HELD})", None
        return True


@dg.logger(
    config_schema={"log_level": dg.Field(str, is_required=False, default_value="INFO")},
    description="Dagster's console logger at INFO, with a held import told in one line (the demo's).",
)
def demo_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    # A logger of its own per run (not registered by name), so runs never pile handlers on one another.
    logger = logging.Logger("dagster", init_context.logger_config["log_level"])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    handler.addFilter(ExpectedHoldFilter())
    logger.addHandler(handler)
    return logger
