"""Open the roster source a district's registry entry asks for."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from roster_pipeline.oneroster import ClientConfig, OneRosterClient
from roster_pipeline.pipeline.run_tags import CSV_BUNDLE_TAG
from roster_pipeline.registry.districts import District
from roster_pipeline.sources.csv_bundle import CsvBundleError, CsvBundleSource
from roster_pipeline.sources.csv_bundle.drop_folder import PROCESSED
from roster_pipeline.sources.protocol import RosterSource


def client_config_for(district: District, environ: Mapping[str, str] | None = None) -> ClientConfig:
    """Build the REST client settings of a district, reading its credentials from the env vars it names.

    ``oneroster_rest_oauth1`` is the same REST client signing each request with OAuth 1.0a (the client
    id and secret are the consumer key and secret); it has no token endpoint, so no token URL is passed.
    """
    client_id, client_secret = district.credentials(os.environ if environ is None else environ)
    oauth1 = district.import_method == "oneroster_rest_oauth1"
    return ClientConfig(
        district_id=district.id,
        base_url=district.base_url_resolved,
        token_url=None if oauth1 else district.token_url_resolved,
        auth_scheme="oauth1" if oauth1 else "oauth2",
        client_id=client_id,
        client_secret=SecretStr(client_secret),
        token_auth=district.token_auth,
        token_scope=district.token_scope,
        page_size=district.page_size,
        max_concurrency=district.max_concurrency,
        timeout_seconds=district.timeout_seconds,
        # oneroster_v1p2_rest: the same client, reading the 1.2 rostering binding and mapping it onto 1.1.
        oneroster_version="1.2" if district.import_method == "oneroster_v1p2_rest" else "1.1",
    )


def bundle_path_for(district: District, run_tags: Mapping[str, str] | None = None) -> Path:
    """The CSV bundle a run of a csv_bundle district reads.

    ``path`` districts: that file.  ``drop_folder`` districts: the bundle the drop-folder sensor took for
    the run, named by the run tag ``roster/csv_bundle``; it must lie in the drop folder's ``processed/``
    (a tag is editable in the UI, and a run must not read arbitrary files).
    """
    settings = district.csv_bundle
    if settings is None:
        raise CsvBundleError(district.id, "(none)", "import_method csv_bundle needs a csv_bundle section")
    if settings.path is not None:
        return Path(settings.path)
    assert settings.drop_folder is not None
    tagged = (run_tags or {}).get(CSV_BUNDLE_TAG, "").strip()
    if not tagged:
        raise CsvBundleError(
            district.id,
            "(none)",
            f"the district takes bundles from the drop folder {settings.drop_folder}; its runs are started by "
            f"the drop-folder sensor with the run tag {CSV_BUNDLE_TAG} naming the bundle (to rerun one by hand, "
            f"set that tag to a bundle in {Path(settings.drop_folder) / PROCESSED})",
        )
    bundle = Path(tagged).resolve()
    processed = (Path(settings.drop_folder) / PROCESSED).resolve()
    if bundle.parent != processed:
        raise CsvBundleError(
            district.id,
            bundle.name,
            f"the run tag {CSV_BUNDLE_TAG} must name a bundle in {processed}, not {bundle.parent}",
        )
    return bundle


def open_source(
    district: District,
    environ: Mapping[str, str] | None = None,
    client_overrides: Mapping[str, Any] | None = None,
    run_tags: Mapping[str, str] | None = None,
) -> RosterSource:
    """The district's roster source, not yet entered (use it as a context manager).

    ``client_overrides`` adjusts REST client settings the registry does not carry (retry budget,
    backoff), so a script or a test can give up in seconds where a scheduled run waits minutes.
    ``run_tags``: the run's tags (a drop-folder district's run names its bundle in ``roster/csv_bundle``).
    """
    if district.import_method == "csv_bundle":
        return CsvBundleSource(
            district.id, bundle_path_for(district, run_tags), batch_size=district.page_size
        )
    config = client_config_for(district, environ)
    if client_overrides:
        config = ClientConfig.model_validate(
            {**config.model_dump(), **client_overrides, "client_secret": config.client_secret}
        )
    return OneRosterClient(config)
