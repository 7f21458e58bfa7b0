"""Where a district's roster comes from: one interface, one implementation per import method.

The sync steps (``roster_pipeline.pipeline.sync``) only ever see a ``RosterSource``: batches of OneRoster 1.1
shaped record dicts per collection, fetch figures per collection, and the SIS's current school year.
Every import method (REST with OAuth2 or OAuth 1.0a, OneRoster 1.2 REST, a 1.1 CSV bundle) maps what it
reads onto that shape, so staging, validation, the checks and publishing are the same code for all.
"""

from roster_pipeline.sources.factory import open_source
from roster_pipeline.sources.protocol import ImportMethod, RosterSource

__all__ = ["ImportMethod", "RosterSource", "open_source"]
