"""The derived tables as Dagster assets, one partition per district, downstream of ``published_roster``:

    published_roster ─┬─ class_teachers
                      └─ student_logins

In the sync job they run right after the publish, in the same run, and read only the published rows:
when an import is held (a blocking check failed) ``published_roster`` does not run, so neither do they,
and the tables keep the last published state.  Either can also be materialized on its own (e.g. after
changing ``student_devices`` or ``class_teachers`` in the registry and reloading): it rebuilds from what
is published now.  The work is in ``roster_pipeline.derived``; here only metadata.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

import dagster as dg

from roster_pipeline.derived.build import (
    CLASS_TEACHERS,
    STUDENT_LOGINS,
    DerivedBuild,
    build_class_teachers,
    build_student_logins,
)
from roster_pipeline.registry.districts import District
from roster_pipeline.warehouse import Warehouse

from .assets import OWNERS, asset_tags
from .resources import DistrictRegistryResource, WarehouseResource

if TYPE_CHECKING:
    from dagster._core.definitions.metadata import RawMetadataValue

DERIVED_GROUP = "roster_derived"

DESCRIPTIONS: dict[str, str] = {
    CLASS_TEACHERS: (
        "Every teacher of every current class (table class_teachers), from the published enrollments with role "
        "teacher (plus the roles the district opts into: class_teachers.include_roles in the registry). "
        "is_primary is the enrollment's primary flag; display_order is alphabetical over the class's teachers: "
        "family name, given name, then sourcedId, ignoring case, accents, spaces and punctuation. Classes with "
        "several primaries, none, or no teacher are warnings (Import Results), never errors."
    ),
    STUDENT_LOGINS: (
        "One row per current student (table student_logins) with the login each device type uses under the "
        "district's student_devices: chromebook_login is the email (chromebooks_only, mixed), "
        "other_device_login the username (no_chromebooks, mixed). A student who cannot sign in keeps a row "
        "with the reason in problem and is a warning in Import Results."
    ),
}


def build_metadata(build: DerivedBuild) -> dict[str, "RawMetadataValue"]:
    """Row and warning counts as the UI shows them (the email reads the same stored warnings)."""
    return {
        "district": build.district_id,
        "import_id": build.import_id,  # the published import the rows reflect
        "dagster/row_count": build.rows,
        "warnings": build.warning_count,
        **build.figures,
        **(
            {"warning_details": dg.MetadataValue.md("\n".join(f"- {w.message}" for w in build.warnings))}
            if build.warnings
            else {}
        ),
    }


def _derived_asset(
    name: str, build: Callable[[Warehouse, District], DerivedBuild], partitions_def: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        partitions_def=partitions_def,
        group_name=DERIVED_GROUP,
        owners=OWNERS,
        tags=asset_tags("derived", pii=True),
        deps=["published_roster"],
        kinds={"sql"},
        description=DESCRIPTIONS[name],
    )
    def derived(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, registry: DistrictRegistryResource
    ) -> dg.MaterializeResult:
        district = registry.get().get(context.partition_key)
        result = build(warehouse.get(), district)
        context.log.info(
            f"district {district.id}: {name} rebuilt from import {result.import_id}: {result.rows} rows, "
            f"{result.warning_count} warning(s)"
        )
        for warning in result.warnings:
            context.log.warning(warning.message)
        return dg.MaterializeResult(metadata=build_metadata(result))

    return derived


def build_derived_assets(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [
        _derived_asset(CLASS_TEACHERS, build_class_teachers, partitions_def),
        _derived_asset(STUDENT_LOGINS, build_student_logins, partitions_def),
    ]
