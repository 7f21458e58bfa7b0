"""The real console script: `roster-pipeline simulator` in a subprocess, and `simulator mutate`."""

from __future__ import annotations

import subprocess

import httpx

from roster_pipeline.simulator import SimulatorProcess
from roster_pipeline.simulator.testing import console_command


def test_console_script_serves_mutates_and_keeps_the_secret_quiet() -> None:
    secret = "cli-secret-Qq7"
    with SimulatorProcess(
        size="tiny",
        seed=3,
        app_name="cli",
        client_id="cli-id",
        client_secret=secret,
        extra_args=["--max-page-size", "7", "--token-ttl", "120"],
    ) as proc:
        assert proc.token_url == f"{proc.url}/campus/oauth2/token?appName=cli"
        assert proc.base_url == f"{proc.url}/campus/api/oneroster/v1p1/cli/ims/oneroster/v1p1"
        token = httpx.post(
            proc.token_url, data={"grant_type": "client_credentials"}, auth=("cli-id", secret)
        ).json()
        assert token["expires_in"] == 120
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        users = httpx.get(proc.base_url + "/users", headers=headers)
        assert users.status_code == 200 and len(users.json()["users"]) == 7  # --max-page-size honoured

        mutate = subprocess.run(
            [
                *console_command(),
                "simulator",
                "mutate",
                "--url",
                proc.url,
                "--app",
                "cli",
                "change_users",
                "--param",
                "percent=20",
                "--param",
                "now=2027-01-02T00:00:00Z",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert mutate.returncode == 0, mutate.stderr + mutate.stdout
        assert mutate.stdout.strip().startswith("{")
        delta = httpx.get(
            proc.base_url + "/users",
            headers=headers,
            params={"filter": "dateLastModified>='2027-01-02T00:00:00Z'"},
        )
        assert int(delta.headers["x-total-count"]) >= 1

        bad = subprocess.run(
            [
                *console_command(),
                "simulator",
                "mutate",
                "--url",
                proc.url,
                "--app",
                "cli",
                "no_such_mutation",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 1 and "unknown mutation" in bad.stdout

        stats = subprocess.run(
            [*console_command(), "simulator", "stats", "--url", proc.url, "--app", "cli"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stats.returncode == 0 and '"version"' in stats.stdout
        assert proc.stop() == 0  # SIGTERM: clean exit
        log = proc.log_text()
    assert "/users" in log  # requests are logged ...
    assert secret not in log and token["access_token"] not in log  # ... without credentials


def test_console_script_serves_oneroster_1p2_under_the_1p2_base() -> None:
    with SimulatorProcess(
        size="tiny",
        seed=3,
        app_name="cli",
        client_id="cli-id",
        client_secret="cli-secret-Rr8",
        extra_args=["--oneroster-version", "1.2", "--quiet"],
    ) as proc:
        assert proc.base_url == f"{proc.url}/campus/api/oneroster/v1p2/cli/ims/oneroster/rostering/v1p2"
        token = httpx.post(
            proc.token_url, data={"grant_type": "client_credentials"}, auth=("cli-id", "cli-secret-Rr8")
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        users = httpx.get(proc.base_url + "/users", headers=headers).json()["users"]
        assert users and all("roles" in user and "role" not in user for user in users)
        v1p1_base = proc.base_url.replace(
            "v1p2/cli/ims/oneroster/rostering/v1p2", "v1p1/cli/ims/oneroster/v1p1"
        )
        assert httpx.get(v1p1_base + "/users", headers=headers).status_code == 404
