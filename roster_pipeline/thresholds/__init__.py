"""Import thresholds: should this staged snapshot be published, or held for an admin?

Two checks, both pure pandas/Pandera over summaries the warehouse computes:

- ``evaluate_change_thresholds`` — per resource: % added / updated / deleted against what is published,
  % rejected against what was fetched (rules in ``thresholds.change``);
- ``evaluate_school_thresholds`` — per school: users and enrollments dropping (rules in
  ``thresholds.school``), so one school vanishing is caught even when the district-wide % is small.

Each input is first validated by a Pandera model (``thresholds.inputs``); the rules themselves are
Pandera checks built per district from its effective thresholds (``thresholds.rules``).  Both return a
``ThresholdReport`` (``passed``, ``violations``, ``table``, ``markdown()``, ``as_metadata()``,
``summary_line()``).
"""

from roster_pipeline.thresholds.change import REJECTED_FLOOR, evaluate_change_thresholds
from roster_pipeline.thresholds.inputs import ChangeSummary, SchoolSummary, ThresholdInputError
from roster_pipeline.thresholds.report import ThresholdReport
from roster_pipeline.thresholds.rules import BELOW_MINIMUM, EXCEEDED, EXEMPT_FIRST_IMPORT, OK
from roster_pipeline.thresholds.school import evaluate_school_thresholds

__all__ = [
    "BELOW_MINIMUM",
    "EXCEEDED",
    "EXEMPT_FIRST_IMPORT",
    "OK",
    "REJECTED_FLOOR",
    "ChangeSummary",
    "SchoolSummary",
    "ThresholdInputError",
    "ThresholdReport",
    "evaluate_change_thresholds",
    "evaluate_school_thresholds",
]
