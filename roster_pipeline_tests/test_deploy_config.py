"""The Kubernetes deployment files load for real and agree with each other, the production instance and the code.

``docs/deploy/k8s/dagster.yaml`` is loaded as a real DagsterInstance: its Postgres storage on a fresh
database (through the DAGSTER_PG_* variables), its K8sRunLauncher with a throwaway kubeconfig (the one
setting changed: a pod reads its cluster's in-cluster config, the test has no cluster; the launcher never
contacts one while it loads).  Its run queue must equal the top-level dagster.yaml's, so that moving to
Kubernetes never changes how many runs go at once or the one-run-per-district rule.  The Helm chart's
``values.yaml`` and ``env.yaml`` are checked for the names they share with the instance file and with
what the code reads.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes
import pytest
import sqlalchemy as sa
import yaml
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_k8s import K8sRunLauncher
from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from roster_pipeline.registry.districts import ENV_FILE_VARIABLE
from roster_pipeline.warehouse import ENV_DATABASE_URL
from roster_pipeline_tests.paths import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "docs" / "deploy" / "k8s"
PG_VARIABLES = (
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)

FAKE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
  - name: nowhere
    cluster: {server: "https://127.0.0.1:9"}
users:
  - name: nobody
    user: {token: not-a-token}
contexts:
  - name: test
    context: {cluster: nowhere, user: nobody, namespace: roster-pipeline}
current-context: test
"""


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


INSTANCE = load_yaml(DEPLOY / "dagster.yaml")
PRODUCTION = load_yaml(PROJECT_ROOT / "dagster.yaml")
VALUES = load_yaml(DEPLOY / "values.yaml")
ENV_DOCS = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all((DEPLOY / "env.yaml").read_text())}
LAUNCHER = INSTANCE["run_launcher"]["config"]


def env_names(config: Any) -> set[str]:
    """Every ``{env: NAME}`` in an instance config."""
    if isinstance(config, dict):
        if set(config) == {"env"}:
            return {config["env"]}
        return set().union(*(env_names(v) for v in config.values())) if config else set()
    if isinstance(config, list):
        return set().union(*(env_names(v) for v in config)) if config else set()
    return set()


def names(entries: list[dict[str, str]]) -> list[str]:
    return [entry["name"] for entry in entries]


@pytest.fixture()
def k8s_dagster_home(
    new_postgres_database: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A DAGSTER_HOME with the shipped k8s instance file, its storage on a fresh database, a fake kubeconfig."""
    url = sa.engine.make_url(new_postgres_database())
    for name, value in zip(
        PG_VARIABLES,
        (
            url.host or "127.0.0.1",
            str(url.port or 5432),
            url.username or "postgres",
            url.password or "",
            url.database or "",
        ),
        strict=True,
    ):
        monkeypatch.setenv(name, value)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    config = load_yaml(DEPLOY / "dagster.yaml")
    config["run_launcher"]["config"].update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    yield home


@pytest.mark.postgres
def test_the_k8s_instance_loads_with_k8s_run_launcher_postgres_storage_and_the_production_queue(
    k8s_dagster_home: Path,
) -> None:
    with dg.DagsterInstance.from_config(str(k8s_dagster_home)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, K8sRunLauncher)
        assert launcher.job_namespace == LAUNCHER["job_namespace"] == "roster-pipeline"
        assert launcher.service_account_name == LAUNCHER["service_account_name"]
        assert launcher.instance_config_map == LAUNCHER["instance_config_map"]
        assert launcher.image_pull_policy == "Always"
        assert list(launcher.env_config_maps) == ["roster-pipeline-env"]
        assert list(launcher.env_secrets) == ["roster-pipeline-secrets"]
        # the registry volume converts to Kubernetes objects the way the launcher converts it for a run's pod
        mounts = [
            k8s_model_from_dict(
                kubernetes.client.V1VolumeMount, k8s_snake_case_dict(kubernetes.client.V1VolumeMount, m)
            )
            for m in launcher.volume_mounts
        ]
        volumes = [
            k8s_model_from_dict(
                kubernetes.client.V1Volume, k8s_snake_case_dict(kubernetes.client.V1Volume, v)
            )
            for v in launcher.volumes
        ]
        assert [(m.name, m.mount_path) for m in mounts] == [("districts", "/etc/roster_pipeline")]
        assert [(v.name, v.config_map.name) for v in volumes] == [("districts", "roster-pipeline-districts")]

        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        # the storage is usable: a run written is read back from the fresh database
        run = instance.create_run_for_job(dg.GraphDefinition(name="noop", node_defs=[]).to_job())
        assert instance.get_run_by_id(run.run_id) is not None

        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        k8s_queue = instance.get_concurrency_config().run_queue_config
        assert instance.run_monitoring_enabled
    with production_instance(k8s_dagster_home) as production:
        production_queue = production.get_concurrency_config().run_queue_config
        assert isinstance(production.run_launcher, dg.DefaultRunLauncher)
    assert k8s_queue.max_concurrent_runs == production_queue.max_concurrent_runs == 8
    assert k8s_queue.tag_concurrency_limits == production_queue.tag_concurrency_limits
    assert k8s_queue.tag_concurrency_limits == [
        {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]


def production_instance(k8s_dagster_home: Path) -> dg.DagsterInstance:
    """The top-level dagster.yaml, loaded the same way (same database), to compare against."""
    home = k8s_dagster_home.parent / "production_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    return dg.DagsterInstance.from_config(str(home))


def test_the_k8s_instance_is_the_production_instance_but_for_its_run_launcher() -> None:
    assert "run_launcher" not in PRODUCTION
    assert {k: v for k, v in INSTANCE.items() if k != "run_launcher"} == PRODUCTION
    assert INSTANCE["run_launcher"]["module"] == "dagster_k8s"
    assert INSTANCE["run_launcher"]["class"] == "K8sRunLauncher"
    assert LAUNCHER["load_incluster_config"] is True, "pods read their own cluster's config"


def test_env_yaml_carries_every_variable_the_instance_and_the_code_read_and_no_secret_value() -> None:
    config_map = ENV_DOCS[LAUNCHER["env_config_maps"][0]]
    secret = ENV_DOCS[LAUNCHER["env_secrets"][0]]
    assert (config_map["kind"], secret["kind"]) == ("ConfigMap", "Secret")
    provided = set(config_map["data"]) | set(secret["stringData"])
    assert env_names(INSTANCE) == set(PG_VARIABLES) <= provided
    assert {ENV_FILE_VARIABLE, ENV_DATABASE_URL} <= provided
    assert ENV_DATABASE_URL in secret["stringData"], "the warehouse URL holds a password"
    assert "DAGSTER_PG_PASSWORD" in secret["stringData"]
    registry_path = Path(config_map["data"][ENV_FILE_VARIABLE])
    assert [m["mountPath"] for m in LAUNCHER["volume_mounts"]] == [str(registry_path.parent)]

    example = load_yaml(PROJECT_ROOT / "roster_pipeline" / "registry" / "districts.example.yaml")
    credentials = {
        d[k] for d in example["districts"] for k in ("client_id_env", "client_secret_env") if k in d
    }
    assert credentials and credentials <= set(secret["stringData"])
    assert all(
        value == ""
        for doc in ENV_DOCS.values()
        if doc["kind"] == "Secret"
        for value in doc["stringData"].values()
    ), "no secret value is ever committed"


def test_the_helm_values_run_the_project_image_with_the_instance_files_settings() -> None:
    (deployment,) = VALUES["dagster-user-deployments"]["deployments"]
    assert VALUES["dagster-user-deployments"]["enabled"] is True
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "roster_pipeline.definitions"]
    workspace = load_yaml(PROJECT_ROOT / "workspace.yaml")
    assert workspace["load_from"][0]["python_module"]["module_name"] == "roster_pipeline.definitions"
    assert deployment["image"]["pullPolicy"] == LAUNCHER["image_pull_policy"]

    k8s = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    assert k8s["jobNamespace"] == LAUNCHER["job_namespace"]
    assert k8s["imagePullPolicy"] == LAUNCHER["image_pull_policy"]
    assert k8s["loadInclusterConfig"] is True
    assert VALUES["global"]["serviceAccountName"] == LAUNCHER["service_account_name"]
    for where in (k8s, deployment, VALUES["dagsterWebserver"], VALUES["dagsterDaemon"]):
        assert names(where["envConfigMaps"]) == LAUNCHER["env_config_maps"]
        assert names(where["envSecrets"]) == LAUNCHER["env_secrets"]
    for where in (k8s, deployment):
        assert where["volumes"] == LAUNCHER["volumes"] and where["volumeMounts"] == LAUNCHER["volume_mounts"]

    queue = VALUES["dagsterDaemon"]["runCoordinator"]
    runs = PRODUCTION["concurrency"]["runs"]
    assert queue["enabled"] is True and queue["type"] == "QueuedRunCoordinator"
    assert queue["config"]["queuedRunCoordinator"] == {
        "maxConcurrentRuns": runs["max_concurrent_runs"],
        "tagConcurrencyLimits": runs["tag_concurrency_limits"],
    }
    monitoring = VALUES["dagsterDaemon"]["runMonitoring"]
    assert monitoring == {
        "enabled": PRODUCTION["run_monitoring"]["enabled"],
        "maxResumeRunAttempts": PRODUCTION["run_monitoring"]["max_resume_run_attempts"],
    }

    # Dagster's storage: the external Postgres server that env.yaml's DAGSTER_PG_* name, same driver
    postgres, env = VALUES["postgresql"], ENV_DOCS[LAUNCHER["env_config_maps"][0]]["data"]
    assert postgres["enabled"] is False and VALUES["generatePostgresqlPasswordSecret"] is False
    assert postgres["postgresqlScheme"] == PRODUCTION["storage"]["postgres"]["postgres_db"]["scheme"]
    assert (
        postgres["postgresqlHost"],
        postgres["postgresqlUsername"],
        postgres["postgresqlDatabase"],
        str(postgres["service"]["port"]),
    ) == (env["DAGSTER_PG_HOST"], env["DAGSTER_PG_USER"], env["DAGSTER_PG_DB"], env["DAGSTER_PG_PORT"])
    chart_secret = ENV_DOCS[VALUES["global"]["postgresqlSecretName"]]
    assert set(chart_secret["stringData"]) == {"postgresql-password"}


def test_the_image_installs_the_k8s_launcher_in_lockstep_with_dagster() -> None:
    """Every run's pod loads the instance, so the image needs dagster-k8s, pinned like the rest of Dagster."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    dagster_pin = next(d for d in project["dependencies"] if d.startswith("dagster-postgres=="))
    version = dagster_pin.split("==")[1]
    assert project["optional-dependencies"]["k8s"] == [f"dagster-k8s=={version}"]
    assert f"dagster-k8s=={version}" in project["optional-dependencies"]["dev"]
    assert 'pip install --no-cache-dir ".[k8s]"' in (DEPLOY / "Dockerfile").read_text()
