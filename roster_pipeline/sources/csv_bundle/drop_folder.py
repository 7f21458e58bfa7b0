"""The drop folder of a ``csv_bundle`` district: which bundles are complete and new, and taking one.

An SFTP upload is a file growing for a while.  A bundle counts as complete when it is a ``*.zip`` (an
upload written under another name and renamed into place is complete at once), its size and mtime have
not changed for ``settle_seconds``, and it is a readable zip (the central directory is written last, so
a half-written zip is not one).  Taking a bundle moves it into ``processed/`` under a name of its own
(a district that uploads ``roster.zip`` every night must not overwrite last night's), so a bundle runs
once; the run reads it from there, named by the run tag ``roster/csv_bundle``.
"""

from __future__ import annotations

import os
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from roster_pipeline.registry.districts import District

#: The run tag naming the bundle (a path) a drop-folder district's run imports.
PROCESSED = "processed"


@dataclass(frozen=True)
class DroppedBundle:
    """A zip in the drop folder: its path and the identity the sensor's cursor remembers."""

    path: Path
    size: int
    mtime_ns: int

    @property
    def key(self) -> str:
        return f"{self.path.name}:{self.size}:{self.mtime_ns}"


@dataclass(frozen=True)
class Scan:
    """One look at a drop folder: complete bundles (oldest first) and zips not taken, with why."""

    ready: list[DroppedBundle]
    waiting: list[tuple[Path, str]]


def drop_folder_of(district: District) -> Path | None:
    settings = district.csv_bundle
    if district.import_method != "csv_bundle" or settings is None or settings.drop_folder is None:
        return None
    return Path(settings.drop_folder)


def scan(folder: Path, settle_seconds: float, now: float | None = None) -> Scan:
    """The complete bundles in ``folder`` (not its subfolders) and the zips still settling or unreadable."""
    now = time.time() if now is None else now
    ready: list[DroppedBundle] = []
    waiting: list[tuple[Path, str]] = []
    if not folder.is_dir():
        return Scan(ready, [(folder, "the drop folder does not exist")])
    for entry in sorted(folder.iterdir()):
        if not entry.is_file() or entry.suffix.lower() != ".zip":
            continue  # uploads in progress under another name, notes, subfolders (processed/)
        stat = entry.stat()
        age = now - stat.st_mtime
        if age < settle_seconds:
            waiting.append(
                (entry, f"modified {age:.0f}s ago; taken once unchanged for {settle_seconds:.0f}s")
            )
            continue
        if not zipfile.is_zipfile(entry):
            waiting.append(
                (entry, "not a complete zip yet (no central directory); still being written, or broken")
            )
            continue
        ready.append(DroppedBundle(entry, stat.st_size, stat.st_mtime_ns))
    ready.sort(key=lambda b: (b.mtime_ns, b.path.name))
    return Scan(ready, waiting)


def take(bundle: DroppedBundle) -> Path:
    """Move a bundle into ``processed/`` under a unique name (its mtime, then its name); the new path.

    ``os.replace`` within one folder tree is atomic, so a bundle is either still waiting or taken."""
    target_dir = bundle.path.parent / PROCESSED
    target_dir.mkdir(exist_ok=True)
    stamp = datetime.fromtimestamp(bundle.mtime_ns / 1e9, UTC).strftime("%Y%m%dT%H%M%S")
    target = target_dir / f"{stamp}-{bundle.path.name}"
    counter = 1
    while target.exists():
        counter += 1
        target = target_dir / f"{stamp}-{counter}-{bundle.path.name}"
    os.replace(bundle.path, target)
    return target
