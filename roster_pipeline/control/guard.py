"""The review tags and the refusal a paused district's run gets (the rule itself: ``roster_pipeline.pipeline.admission``)."""

from __future__ import annotations

ALLOWED_WHILE_PAUSED = frozenset({"reprocess"})


class DistrictPausedError(RuntimeError):
    """A run of a paused district was refused; the message says why and how to review it."""
