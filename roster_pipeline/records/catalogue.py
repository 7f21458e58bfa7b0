"""The OneRoster 1.1 rostering resources the pipeline syncs, in one place.

Client, simulator, warehouse and Dagster assets all name resources through this catalogue, so a
resource is spelled the same way from the SIS endpoint to the warehouse table and the UI asset.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    """One rostering resource.

    ``name`` is the snake_case name used for Dagster assets and warehouse tables; ``collection`` is the
    OneRoster endpoint (``/academicSessions``) and ``envelope`` the plural key its list responses use.
    ``year_scoped`` resources belong to one school year and are archived at rollover.
    """

    name: str
    collection: str
    envelope: str
    singular: str
    year_scoped: bool


RESOURCES: tuple[Resource, ...] = (
    Resource("orgs", "orgs", "orgs", "org", year_scoped=False),
    Resource(
        "academic_sessions", "academicSessions", "academicSessions", "academicSession", year_scoped=True
    ),
    Resource("courses", "courses", "courses", "course", year_scoped=True),
    Resource("classes", "classes", "classes", "class", year_scoped=True),
    Resource("users", "users", "users", "user", year_scoped=False),
    Resource("enrollments", "enrollments", "enrollments", "enrollment", year_scoped=True),
    Resource("demographics", "demographics", "demographics", "demographics", year_scoped=False),
)

RESOURCES_BY_NAME: dict[str, Resource] = {r.name: r for r in RESOURCES}
RESOURCES_BY_COLLECTION: dict[str, Resource] = {r.collection: r for r in RESOURCES}


def resource(name: str) -> Resource:
    """Look a resource up by its snake_case name or its OneRoster collection name."""
    found = RESOURCES_BY_NAME.get(name) or RESOURCES_BY_COLLECTION.get(name)
    if found is None:
        known = ", ".join(r.name for r in RESOURCES)
        raise KeyError(f"unknown OneRoster resource {name!r}; known: {known}")
    return found
