"""Where the tests find the checkout's own files, defined once."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
README_PATH = PROJECT_ROOT / "README.md"
# The team's reference files beside the checkout (never part of it): tests that need them skip without.
SHARED_REFERENCE = PROJECT_ROOT.parent / "shared" / "oneroster-reference"
