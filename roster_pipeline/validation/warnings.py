"""Per-record warnings: findings that are reported but do not stop a record from being published.

A missing student email is not a OneRoster error, but in a district whose students sign in on
Chromebooks (Google accounts, keyed by email) that student cannot log in: worth telling the admin.

``mixed`` districts get no per-student warning on purpose: we cannot tell which students use a
Chromebook, and a typical mixed district has hundreds of younger students without email (the simulator's
small district: ~20%), so a warning per student would drown the report in noise.  The derived-login
table (a later issue) is where the device mix is resolved per student.
Only active records are warned about: a ``tobedeleted`` record missing optional data is fine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from roster_pipeline.records.rejects import Reject
from roster_pipeline.registry.districts import District

from .messages import record_label

STUDENT_WITHOUT_EMAIL = "student_without_email"


def record_warnings(
    district: District,
    resource_name: str,
    frame: pd.DataFrame,
    valid: np.ndarray,
    records: Sequence[Mapping[str, Any]],
) -> list[Reject]:
    """Warnings for the valid records of one batch (``valid``: boolean mask over the frame's rows)."""
    if resource_name != "users" or district.student_devices != "chromebooks_only":
        return []
    flagged = valid & (frame["role"] == "student").to_numpy() & (frame["status"] == "active").to_numpy()
    flagged &= frame["email"].isna().to_numpy()
    warnings = []
    for position in np.flatnonzero(flagged):
        sourced_id = frame["sourcedId"].iat[position]
        warnings.append(
            Reject(
                resource=resource_name,
                sourced_id=sourced_id,
                field="email",
                check=STUDENT_WITHOUT_EMAIL,
                value=None,
                message=(
                    f"{record_label(district.id, resource_name, sourced_id)}: student has no 'email'; "
                    "Chromebooks sign in by email (student_devices: chromebooks_only), so this student "
                    "cannot log in"
                ),
                severity="warning",
            )
        )
    return warnings
