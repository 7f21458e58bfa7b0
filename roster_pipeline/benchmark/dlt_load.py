"""dlt's ``rest_api`` source into dlt's postgres destination: the district, as a dlt user would load it.

NOT part of roster_pipeline: this file is data for the benchmark. It is executed only by the python of
the benchmark's own virtualenv (where ``dlt[postgres]`` is installed), never imported by the project,
which does not depend on dlt.  Same pages as the sync: page size, offset paging with
``sort=sourcedId&orderBy=asc``, OAuth2 client credentials.  dlt's rest_api pages one resource
sequentially; the sync's concurrency is given to dlt as parallel extraction of resources
(``parallelized`` + ``EXTRACT__WORKERS``), the closest dlt offers.  Everything else is dlt's defaults.

Arguments: base_url token_url page_size concurrency destination_dsn dataset pipelines_dir; credentials
in ROSTER_BENCH_KEY / ROSTER_BENCH_SECRET.  Prints one JSON line: the load's row counts.
"""

import json
import os
import sys

base_url, token_url, page_size, concurrency, dsn, dataset, pipelines_dir = sys.argv[1:8]
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ["EXTRACT__WORKERS"] = concurrency

import dlt  # noqa: E402
from dlt.sources.rest_api import rest_api_source  # noqa: E402

COLLECTIONS = [
    ("orgs", "orgs", "orgs"),
    ("academic_sessions", "academicSessions", "academicSessions"),
    ("courses", "courses", "courses"),
    ("classes", "classes", "classes"),
    ("users", "users", "users"),
    ("enrollments", "enrollments", "enrollments"),
    ("demographics", "demographics", "demographics"),
]

source = rest_api_source(
    {
        "client": {
            "base_url": base_url.rstrip("/") + "/",
            "auth": {
                "type": "oauth2_client_credentials",
                "access_token_url": token_url,
                "client_id": os.environ["ROSTER_BENCH_KEY"],
                "client_secret": os.environ["ROSTER_BENCH_SECRET"],
            },
            "paginator": {
                "type": "offset",
                "limit": int(page_size),
                "offset_param": "offset",
                "limit_param": "limit",
                "total_path": None,
            },
        },
        "resource_defaults": {"parallelized": True, "write_disposition": "replace"},
        "resources": [
            {
                "name": name,
                "primary_key": "sourcedId",
                "endpoint": {
                    "path": collection,
                    "data_selector": envelope,
                    "params": {"sort": "sourcedId", "orderBy": "asc"},
                },
            }
            for name, collection, envelope in COLLECTIONS
        ],
    }
)

pipeline = dlt.pipeline(
    pipeline_name="roster_bench",
    pipelines_dir=pipelines_dir,
    destination=dlt.destinations.postgres(credentials=dsn),
    dataset_name=dataset,
)
info = pipeline.run(source)
counts = {}
with pipeline.sql_client() as client:
    for name, _, _ in COLLECTIONS:
        rows = client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name(name)}")
        counts[name] = int(rows[0][0])
print(json.dumps({"records": counts, "loads": len(info.loads_ids)}))
