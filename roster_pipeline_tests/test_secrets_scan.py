"""The secrets scan: known secret values through a whole day of operation, then every sink searched.

Through the real Dagster job and control sensor on a test instance: a full sync that publishes, a held
import (thresholds), a failed run (wrong client secret), and the sensor emailing Import Results, Check
Your Data and the run failure through an SMTP server that requires AUTH. The secrets: both districts'
client secrets, the wrong secret the failed run sent, every bearer token the SIS issued, the SMTP
password, and their encoded forms on the wire (HTTP Basic, SMTP AUTH PLAIN/LOGIN). Sinks: Python
logging of the whole process, Dagster's event log (every event with its metadata), the run storage
(config, tags), every file of the Dagster instance (its SQLite storages, compute logs), the warehouse
(every table, every column), the emails as received (raw bytes and every decoded part), the outbox,
the sensor's results, the failures' exception texts and reprs, and the simulator's request log.

test_oneroster_resilience.py and test_simulator_server_faults.py cover the client's and the simulator's
own logs and exceptions in detail; this is the whole-system sweep over everything they write. The OAuth
1.0a import method has its own, smaller sweep (below): its secret and its request signatures.
"""

from __future__ import annotations

import base64
import copy
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._serdes import serialize_value

from roster_pipeline.oneroster import AuthenticationError
from roster_pipeline.pipeline.sync import sync_district
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.registry.districts import parse_registry
from roster_pipeline.simulator import SimulatorServer, Tenant, generate_district, mutations
from roster_pipeline.simulator.oauth1 import SignatureVerifier
from roster_pipeline.warehouse import Warehouse

from .control_helpers import bound_definitions, run_sync, tick
from .pipeline_helpers import write_registry

pytestmark = pytest.mark.end_to_end  # Dagster or the whole pipeline is the subject: once, on Postgres

ALPHA_SECRET = "alpha-S3cret-q8Zt1vW"
BETA_SECRET = "beta-S3cret-m4Kx7pR"
WRONG_SECRET = "wrong-S3cret-h2Jn5cY"
SMTP_USER = "roster-mailer"
SMTP_PASSWORD = "smtp-P4ss-w9Lr3eD"


@pytest.fixture()
def server() -> Iterator[SimulatorServer]:
    tiny = generate_district("tiny", seed=31)
    tenants = [
        Tenant("alpha", "alpha-client", ALPHA_SECRET, copy.deepcopy(tiny)),
        Tenant("beta", "beta-client", BETA_SECRET, generate_district("tiny", seed=22)),
    ]
    with SimulatorServer(tenants) as running:
        issued: list[str] = []
        issue = running.token_store.issue

        def recording_issue(app_name: str) -> tuple[str, int]:
            token, ttl = issue(app_name)
            issued.append(token)
            return token, ttl

        running.token_store.issue = recording_issue  # type: ignore[method-assign]  # keep every token ever issued
        running.issued_tokens = issued  # type: ignore[attr-defined]
        yield running


def secret_forms() -> dict[str, str]:
    """Every way a credential could be written down: as is, and as it travels (base64 in Basic / AUTH)."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    forms = {
        "alpha secret": ALPHA_SECRET,
        "beta secret": BETA_SECRET,
        "wrong secret": WRONG_SECRET,
        "SMTP password": SMTP_PASSWORD,
        "SMTP password (AUTH LOGIN)": b64(SMTP_PASSWORD),
        "SMTP password (AUTH PLAIN)": b64(f"\0{SMTP_USER}\0{SMTP_PASSWORD}"),
    }
    for client_id, secret in [
        ("alpha-client", ALPHA_SECRET),
        ("beta-client", BETA_SECRET),
        ("beta-client", WRONG_SECRET),
    ]:
        forms[f"Basic {client_id}:{secret[:5]}…"] = b64(f"{client_id}:{secret}")
    return forms


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def warehouse_text(url: str) -> str:
    """Every row of every table of the warehouse, every column, as text."""
    engine = sa.create_engine(url)
    chunks: list[str] = []
    try:
        with engine.connect() as conn:
            for table in sa.inspect(engine).get_table_names():
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                    chunks.append(f"{table}: {tuple(row)!r}")
    finally:
        engine.dispose()
    return "\n".join(chunks)


def email_text(raw: bytes) -> str:
    """The message as received, plus every part decoded (an attachment is base64 on the wire)."""
    from email import policy
    from email.parser import BytesParser

    texts = [raw.decode("utf-8", "replace")]
    for part in BytesParser(policy=policy.default).parsebytes(raw).walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            texts.append(payload.decode("utf-8", "replace"))
        texts += [f"{k}: {v}" for k, v in part.items()]
    return "\n".join(texts)


def leaks(sinks: dict[str, str | bytes], secrets: dict[str, str]) -> list[str]:
    found = []
    for sink, content in sinks.items():
        haystack = content if isinstance(content, bytes) else content.encode("utf-8", "replace")
        for label, secret in secrets.items():
            if secret.encode() in haystack:
                found.append(f"{label} in {sink}")
    return found


def test_no_secret_reaches_any_sink(
    server: SimulatorServer,
    warehouse_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    smtp_server_factory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger of the process: ours, Dagster's, httpx, the simulator's
    smtp = smtp_server_factory(username=SMTP_USER, password=SMTP_PASSWORD)
    environ: dict[str, str] = {}
    registry_path = tmp_path / "districts.yaml"
    registry = write_registry(registry_path, server, environ, ["alpha", "beta"])
    outbox = tmp_path / "outbox"
    for name, value in {
        **environ,
        "ROSTER_SMTP_HOST": smtp.host,
        "ROSTER_SMTP_PORT": str(smtp.port),
        "ROSTER_SMTP_SECURITY": "none",
        "ROSTER_SMTP_USER": SMTP_USER,
        "ROSTER_SMTP_PASSWORD": SMTP_PASSWORD,
        "ROSTER_EMAIL_FROM": "roster@example.org",
        "ROSTER_OUTBOX_DIR": str(outbox),
        "ROSTER_NOTIFY_RETRY_SECONDS": "0",
        "ROSTER_DAGSTER_URL": "https://dagster.example.org",
    }.items():
        monkeypatch.setenv(name, value)
    defs = bound_definitions(registry, registry_path, warehouse_url)

    with dg.instance_for_test() as instance:
        published = run_sync(defs, "alpha", instance)  # a full sync that publishes
        mutations.wipe_enrollments(server.tenant("alpha").district, percent=90, seed=2)
        held = run_sync(defs, "alpha", instance)  # the thresholds hold it
        monkeypatch.setenv("TEST_BETA_SECRET", WRONG_SECRET)
        failed = run_sync(defs, "beta", instance)  # the SIS refuses the credentials
        ticks = [tick(defs, instance)]
        ticks.append(tick(defs, instance, ticks[0].cursor))
        runs = instance.get_runs()
        sinks: dict[str, str | bytes] = {
            "python logging": caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records),
            "dagster event log": "\n".join(
                serialize_value(entry) for run in runs for entry in instance.all_logs(run.run_id)
            ),
            "dagster run storage (config, tags)": "\n".join(serialize_value(run) for run in runs),
            "sensor results": "\n".join(repr(t) for t in ticks),
            "run failures (exceptions)": "\n".join(
                f"{event.step_failure_data.error!r} {event.message}"
                for result in (held, failed)
                for event in result.get_step_failure_events()
            ),
            "warehouse (every table)": warehouse_text(warehouse_url),
            "simulator request log": "\n".join(repr(r) for r in server.requests),
            **{f"email {e.message['X-Roster-Idempotency-Key']}": email_text(e.raw) for e in smtp.envelopes},
            **{
                f"instance file {name}": data
                for name, data in files_under(Path(instance.root_directory)).items()
            },
            **{
                f"outbox file {name}": data
                for name, data in (files_under(outbox) if outbox.exists() else {}).items()
            },
        }
        secrets = secret_forms()
        secrets.update({f"token {t[:4]}…": t for t in server.issued_tokens})  # type: ignore[attr-defined]
        assert leaks(sinks, secrets) == []

        # The day really happened, and the sinks really hold what they are expected to hold.
        assert published.success and not held.success and not failed.success
        assert Warehouse(warehouse_url).held_import("alpha") is not None
        kinds = sorted(str(m["X-Roster-Idempotency-Key"]).rsplit(":", 1)[1] for m in smtp.messages)
        assert kinds == ["check_your_data", "import_results", "run_failure"], (
            kinds
        )  # the scrubber refused none
        assert smtp.auth_attempts and all(ok for _, ok in smtp.auth_attempts)
        assert len(server.issued_tokens) >= 2  # type: ignore[attr-defined]
        assert "district alpha" in sinks["python logging"] and "beta" in sinks["run failures (exceptions)"]
        assert "invalid_client" in sinks["run failures (exceptions)"]
        assert (
            "roster_import" in sinks["dagster event log"]
            and "dagster/partition" in sinks["dagster run storage (config, tags)"]
        )
        assert (
            "held" in sinks["warehouse (every table)"] and "/oauth2/token" in sinks["simulator request log"]
        )
        assert any(name.startswith("instance file") for name in sinks)


OAUTH1_SECRET = "oauth1-S3cret-r5Tg8"


def test_no_oauth1_secret_or_signature_reaches_logs_warehouse_or_request_log(
    warehouse_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OAuth 1.0a import method: a sync that publishes and one the SIS refuses (wrong consumer secret),
    then the process's logs at DEBUG (oauthlib's signing logger included), the warehouse, the error and the
    simulator's request log searched for both secrets and every signature sent, as sent and as computed."""
    caplog.set_level(logging.DEBUG)
    authorizations: list[str] = []
    verify = SignatureVerifier.refusal

    def recording(self: SignatureVerifier, *args: Any) -> str | None:
        authorizations.append(args[-1]["Authorization"])
        return verify(self, *args)

    monkeypatch.setattr(SignatureVerifier, "refusal", recording)
    tenant = Tenant("gamma", "gamma-key", OAUTH1_SECRET, generate_district("tiny", seed=5))
    warehouse = Warehouse(warehouse_url)
    warehouse.create_schema()
    with SimulatorServer([tenant], auth_mode="oauth1") as sim:
        district = parse_registry(
            {
                "districts": [
                    {
                        "id": "gamma",
                        "name": "Gamma",
                        "import_method": "oneroster_rest_oauth1",
                        "school_year": 2027,
                        "base_url": sim.base_url("gamma"),
                        "client_id_env": "GAMMA_KEY",
                        "client_secret_env": "GAMMA_SECRET",
                    }
                ]
            }
        ).get("gamma")
        published = sync_district(
            warehouse,
            district,
            "run-1",
            RESOURCES,
            environ={"GAMMA_KEY": "gamma-key", "GAMMA_SECRET": OAUTH1_SECRET},
        )
        with pytest.raises(AuthenticationError) as refused:
            sync_district(
                warehouse,
                district,
                "run-2",
                RESOURCES,
                environ={"GAMMA_KEY": "gamma-key", "GAMMA_SECRET": WRONG_SECRET},
            )
        request_log = "\n".join(repr(r) for r in sim.requests)
    sinks: dict[str, str | bytes] = {
        "python logging": caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records),
        "warehouse (every table)": warehouse_text(warehouse_url),
        "the error": f"{refused.value} {refused.value!r}",
        "simulator request log": request_log,
    }
    found = (re.search(r'oauth_signature="([^"]+)"', header) for header in authorizations)
    signatures = [m.group(1) for m in found if m]
    secrets = {"oauth1 secret": OAUTH1_SECRET, "wrong secret": WRONG_SECRET}
    secrets.update({f"signature {s[:4]}…": s for s in signatures})
    secrets.update({f"signature {s[:4]}… (computed)": unquote(s) for s in signatures})
    assert leaks(sinks, secrets) == []
    # The runs really happened and the sinks really hold them.
    assert (
        published.published and len(signatures) == len(authorizations) >= len(RESOURCES) + 1
    )  # + the refused one
    assert "refused the OAuth 1.0a request signature" in str(
        sinks["warehouse (every table)"]
    )  # the failed import
    assert "/users" in request_log and "oauth_signature" not in request_log
    warehouse.dispose()
