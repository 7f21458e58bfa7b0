"""The naive script: what a first attempt at a roster export looks like, for the "≥ 5× faster" target.

Page size 100, one request after another with the standard library (``urllib``, ``json``), every record
of a resource gathered in memory, then ``pandas.DataFrame.to_sql`` into Postgres.  Nothing here is
deliberately slowed down; it is simply the obvious script, and the benchmark shows what the pipeline's
design buys over it.  Nested values (org references, lists) become JSON text, since ``to_sql`` cannot
store a dict.

Run as ``python -m roster_pipeline.benchmark.naive`` (measured as a child process); credentials come
from the environment; the last line printed is JSON: records per resource, requests.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.parse
import urllib.request
from typing import Any

import pandas as pd

from roster_pipeline.benchmark.rig import KEY_ENV, SECRET_ENV
from roster_pipeline.records.catalogue import RESOURCES
from roster_pipeline.warehouse.databases import recreate_schema
from roster_pipeline.warehouse.engine import make_engine

SCHEMA = "bench_naive"
PAGE_SIZE = 100


def get_token(token_url: str, client_id: str, client_secret: str) -> str:
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    request = urllib.request.Request(
        token_url,
        data=b"grant_type=client_credentials",
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return str(json.loads(response.read())["access_token"])


def fetch_all(
    base_url: str, token: str, collection: str, envelope: str, page_size: int
) -> tuple[list[dict[str, Any]], int]:
    """Every record of a collection, page by page until a short page; returns (records, requests)."""
    records: list[dict[str, Any]] = []
    offset = requests = 0
    while True:
        query = urllib.parse.urlencode(
            {"sort": "sourcedId", "orderBy": "asc", "limit": page_size, "offset": offset}
        )
        request = urllib.request.Request(
            f"{base_url}/{collection}?{query}", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            page = json.loads(response.read())[envelope]
        requests += 1
        records.extend(page)
        if len(page) < page_size:
            return records, requests
        offset += page_size


def to_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(records)
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, (dict, list))).any():
            frame[column] = frame[column].map(lambda v: json.dumps(v) if isinstance(v, (dict, list)) else v)
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token-url", required=True)
    parser.add_argument(
        "--database-url", required=True, help="SQLAlchemy URL (tables go to a scratch schema)"
    )
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE)
    parser.add_argument("--schema", default=SCHEMA)
    args = parser.parse_args(argv)
    token = get_token(args.token_url, os.environ[KEY_ENV], os.environ[SECRET_ENV])
    recreate_schema(args.database_url, args.schema)
    engine = make_engine(args.database_url)
    counts: dict[str, int] = {}
    requests = 0
    for resource in RESOURCES:
        records, made = fetch_all(
            args.base_url, token, resource.collection, resource.envelope, args.page_size
        )
        requests += made
        if records:  # to_sql cannot create a table from a frame without columns
            to_frame(records).to_sql(
                resource.name, engine, schema=args.schema, if_exists="replace", index=False
            )
        counts[resource.name] = len(records)
    engine.dispose()
    print(json.dumps({"records": counts, "requests": requests}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
