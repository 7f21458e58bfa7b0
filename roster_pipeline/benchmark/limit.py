"""The machine's limit: the sync's pages at the sync's concurrency, orjson, COPY into unlogged tables, nothing else.

This is the floor any loader of this district can reach on this machine (same simulator, same page
size, same number of requests in flight), so ``full_s / limit_s`` says what the pipeline's validation,
diff, checks, history and Dagster cost on top of moving the bytes.  It requests exactly what the
sync's client requests (every resource endpoint, ``sort=sourcedId&orderBy=asc``, ``limit``/``offset``)
and stores each record's sourcedId and raw JSON text, as the warehouse's staging does.

Run as ``python -m roster_pipeline.benchmark.limit`` (the harness measures it as a child process); the
credentials come from the environment; the last line printed is JSON: records per resource, requests.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import orjson
import psycopg
from pydantic import SecretStr

from roster_pipeline.benchmark.rig import KEY_ENV, SECRET_ENV
from roster_pipeline.oneroster.auth import TokenManager
from roster_pipeline.oneroster.config import ClientConfig
from roster_pipeline.oneroster.tls import verifying_context
from roster_pipeline.records.catalogue import RESOURCES, Resource

SCHEMA = "bench_limit"


class LimitLoader:
    """Fetch every page of every resource with ``concurrency`` threads; each thread COPYs what it fetched."""

    def __init__(self, config: ClientConfig, dsn: str, schema: str = SCHEMA) -> None:
        self.config = config
        self.dsn = dsn
        self.schema = schema
        self._local = threading.local()
        self._connections: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self.requests = 0
        limits = httpx.Limits(
            max_connections=config.max_concurrency, max_keepalive_connections=config.max_concurrency
        )
        self.http = httpx.Client(timeout=config.timeout_seconds, limits=limits, verify=verifying_context())
        # The project's token helper: the same token request (client_secret_basic) the sync's client sends.
        self.token = TokenManager(config, self.http).access_token()

    def create_tables(self, resources: tuple[Resource, ...]) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
            for resource in resources:
                conn.execute(
                    f'CREATE UNLOGGED TABLE "{self.schema}"."{resource.name}" (sourced_id text, raw text)'
                )

    def _connection(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = psycopg.connect(self.dsn, autocommit=True)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def page(self, resource: Resource, offset: int) -> tuple[int, int]:
        """Fetch one page, parse it, COPY it; returns (records, X-Total-Count)."""
        response = self.http.get(
            f"{self.config.base_url}/{resource.collection}",
            params={
                "sort": "sourcedId",
                "orderBy": "asc",
                "limit": str(self.config.page_size),
                "offset": str(offset),
            },
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
        )
        response.raise_for_status()
        with self._lock:
            self.requests += 1
        records = orjson.loads(response.content)[resource.envelope]
        if records:
            with self._connection().cursor() as cur:
                with cur.copy(f'COPY "{self.schema}"."{resource.name}" (sourced_id, raw) FROM STDIN') as copy:
                    for record in records:
                        copy.write_row((record["sourcedId"], orjson.dumps(record).decode()))
        return len(records), int(response.headers["X-Total-Count"])

    def load(self, resources: tuple[Resource, ...] = RESOURCES) -> dict[str, int]:
        """Records staged per resource. First pages of all resources go out together (their totals say
        which offsets remain); never more than ``max_concurrency`` requests are in flight."""
        self.create_tables(resources)
        size = self.config.page_size
        counts: dict[str, int] = {}
        with ThreadPoolExecutor(max_workers=self.config.max_concurrency) as pool:
            firsts = {r: pool.submit(self.page, r, 0) for r in resources}
            rest: list[tuple[Resource, Future[tuple[int, int]]]] = []
            for resource, first in firsts.items():
                received, total = first.result()
                counts[resource.name] = received
                rest += [
                    (resource, pool.submit(self.page, resource, offset))
                    for offset in range(size, total, size)
                ]
            for resource, future in rest:
                counts[resource.name] += future.result()[0]
        return counts

    def close(self) -> None:
        self.http.close()
        for conn in self._connections:
            conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token-url", required=True)
    parser.add_argument("--page-size", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--dsn", required=True, help="libpq URL of the database (a scratch schema is used)")
    parser.add_argument("--schema", default=SCHEMA)
    args = parser.parse_args(argv)
    config = ClientConfig(
        district_id="bench-limit",
        base_url=args.base_url,
        token_url=args.token_url,
        client_id=os.environ[KEY_ENV],
        client_secret=SecretStr(os.environ[SECRET_ENV]),
        page_size=args.page_size,
        max_concurrency=args.concurrency,
    )
    loader = LimitLoader(config, args.dsn, args.schema)
    try:
        counts = loader.load()
    finally:
        loader.close()
    sys.stdout.write(orjson.dumps({"records": counts, "requests": loader.requests}).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
