"""OAuth2 scopes: some OneRoster 1.2 providers grant a token only to a client that asks for their scopes.

The simulator, started with ``required_scopes``, refuses a token request without them (``invalid_scope``),
as such a provider does; the client asks for ``token_scope`` and then pulls, and without it fails with an
error that names the district and the setting to fix.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from roster_pipeline.oneroster import AuthenticationError, OneRosterClient
from roster_pipeline.simulator import SimulatorServer, running_simulator
from roster_pipeline_tests.client_helpers import simulator_client_config

ROSTER_CORE = "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly"
SECRET = "scope-secret-Kx9"


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with running_simulator(
        app_name="scoped",
        client_id="scoped-id",
        client_secret=SECRET,
        oneroster_version="1.2",
        required_scopes=frozenset({ROSTER_CORE}),
    ) as s:
        yield s


def test_a_client_asking_for_the_required_scope_gets_a_token_and_pulls(server: SimulatorServer) -> None:
    config = simulator_client_config(
        server,
        "scoped",
        client_id="scoped-id",
        client_secret=SECRET,
        oneroster_version="1.2",
        token_scope=ROSTER_CORE,
    )
    with OneRosterClient(config) as client:
        orgs = [record for batch in client.iter_batches("orgs") for record in batch]
    assert len(orgs) == len(server.tenant("scoped").district.collections["orgs"])


def test_without_the_scope_the_error_names_the_district_and_token_scope(server: SimulatorServer) -> None:
    config = simulator_client_config(
        server, "scoped", client_id="scoped-id", client_secret=SECRET, oneroster_version="1.2", max_retries=0
    )
    with OneRosterClient(config) as client, pytest.raises(AuthenticationError) as caught:
        list(client.iter_batches("orgs"))
    message = str(caught.value)
    assert "springfield" in message and "invalid_scope" in message and "token_scope" in message
    assert SECRET not in message
