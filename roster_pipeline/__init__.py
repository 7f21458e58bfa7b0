"""roster_pipeline: keep school districts' rosters in sync with their SIS over OneRoster 1.1."""

__version__ = "0.1.0"
