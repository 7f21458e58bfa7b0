"""Import method ``csv_bundle``: a OneRoster 1.1 CSV zip, from a fixed path or a drop folder.

``reader`` reads a bundle as a ``RosterSource``; ``manifest`` and ``layout`` describe the bundle;
``mapping`` turns rows into the 1.1 JSON shape; ``drop_folder`` finds complete new bundles for the
drop-folder sensor and moves taken ones to ``processed/``.
"""

from .errors import CsvBundleError
from .layout import FILES, MANIFEST
from .manifest import Manifest, parse_manifest
from .reader import CsvBatch, CsvBundleSource

__all__ = ["FILES", "MANIFEST", "CsvBatch", "CsvBundleError", "CsvBundleSource", "Manifest", "parse_manifest"]
