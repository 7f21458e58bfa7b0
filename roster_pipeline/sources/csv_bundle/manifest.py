"""``manifest.csv``: which files a bundle delivers, and how (``bulk``, ``delta`` or ``absent``).

Why the manifest decides the import's mode: a ``bulk`` file is the whole set of its resource (what is
missing from it was deleted), a ``delta`` file holds only changed records (what is missing says
nothing).  The warehouse infers deletions only from a full import, so a bundle with any delta file is
imported as a delta, never as a full pull.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from .layout import FILE_MODES, FILES, MANIFEST

FileMode = Literal["bulk", "delta", "absent"]
SUPPORTED_VERSIONS = ("1.1",)


class ManifestProblem(ValueError):
    """What is wrong with a manifest (the reader adds district, bundle, file and line)."""

    def __init__(self, problem: str, line: int | None = None, column: str | None = None) -> None:
        self.line = line
        self.column = column
        super().__init__(problem)


@dataclass(frozen=True)
class Manifest:
    """The manifest's properties and the delivery mode of each rostering file (by collection)."""

    properties: Mapping[str, str]
    modes: Mapping[str, FileMode]

    def mode_of(self, collection: str) -> FileMode:
        return self.modes.get(collection, "absent")

    @property
    def delivered(self) -> list[str]:
        return [c for c, m in self.modes.items() if m != "absent"]

    @property
    def sync_mode(self) -> Literal["full", "delta"]:
        """delta when any delivered file is a delta (deletions are then never inferred), else full."""
        return "delta" if any(m == "delta" for m in self.modes.values()) else "full"


def parse_manifest(rows: Iterable[tuple[int, list[str]]]) -> Manifest:
    """Rows of manifest.csv as (line number, cells), the header first."""
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        raise ManifestProblem(f"{MANIFEST} is empty; expected the header propertyName,value", line=1)
    line, header = first
    if [h.strip() for h in header[:2]] != ["propertyName", "value"]:
        raise ManifestProblem(f"the header must be propertyName,value, got {','.join(header)!r}", line=line)
    properties: dict[str, str] = {}
    for line, cells in iterator:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != 2:
            raise ManifestProblem(f"expected 2 columns (propertyName,value), got {len(cells)}", line=line)
        name, value = cells[0].strip(), cells[1].strip()
        if name in properties:
            raise ManifestProblem(f"property {name!r} is given twice", line=line, column="propertyName")
        properties[name] = value
        if name.startswith("file.") and value.lower() not in FILE_MODES:
            raise ManifestProblem(
                f"{name} must be one of {', '.join(FILE_MODES)}, got {value!r}", line=line, column="value"
            )
    version = properties.get("oneroster.version")
    if version is None:
        raise ManifestProblem(
            "property 'oneroster.version' is missing (this reader takes OneRoster 1.1 bundles)"
        )
    if version not in SUPPORTED_VERSIONS:
        raise ManifestProblem(
            f"oneroster.version is {version!r}; this import method reads OneRoster 1.1 CSV bundles "
            "(a 1.2 bundle needs its own mapping)"
        )
    modes: dict[str, FileMode] = {}
    for collection, spec in FILES.items():
        value = properties.get(spec.manifest_key, "absent").lower()
        modes[collection] = value  # type: ignore[assignment]  # checked against FILE_MODES above
    return Manifest(properties=properties, modes=modes)


def manifest_text(modes: Mapping[str, FileMode], system_name: str = "roster_pipeline simulator") -> str:
    """A manifest.csv for the given modes (the exporter's; every other file listed as absent)."""
    lines = ["propertyName,value", "manifest.version,1.0", "oneroster.version,1.1"]
    for name in (
        "academicSessions",
        "categories",
        "classes",
        "classResources",
        "courses",
        "courseResources",
        "demographics",
        "enrollments",
        "lineItems",
        "orgs",
        "resources",
        "results",
        "users",
    ):
        lines.append(f"file.{name},{modes.get(name, 'absent')}")
    lines.append(f"source.systemName,{system_name}")
    lines.append("source.systemCode,")
    return "\r\n".join(lines) + "\r\n"
