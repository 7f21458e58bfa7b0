"""How a student signs in, by the district's ``student_devices`` setting (pure rules, no database).

* ``chromebooks_only``: Chromebooks sign in with a Google account keyed by the student's **email**;
* ``no_chromebooks``: Windows, Mac and iPad logins use the SIS **username**;
* ``mixed``: both: the email on a Chromebook, the username on every other device.

A student who cannot sign in under the setting gets a ``problem``: no email in a Chromebook-only
district, no username wherever the username is the login (``no_chromebooks``, ``mixed``).  In a mixed
district a missing email is not a problem: nobody can tell which students use a Chromebook, and younger
students commonly have no email (the same reasoning as ``validation.warnings``); their
``chromebook_login`` is simply empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

StudentDevices = Literal["chromebooks_only", "no_chromebooks", "mixed"]

NO_EMAIL = "no_email"
NO_USERNAME = "no_username"

#: Which record field each device type signs in with, per setting (None: that device type is not used).
LOGIN_FIELDS: dict[str, dict[str, str | None]] = {
    "chromebooks_only": {"chromebook": "email", "other_devices": None},
    "no_chromebooks": {"chromebook": None, "other_devices": "username"},
    "mixed": {"chromebook": "email", "other_devices": "username"},
}

PROBLEM_TEXT: dict[str, str] = {
    NO_EMAIL: "no email (Chromebooks sign in by email)",
    NO_USERNAME: "no username (devices other than Chromebooks sign in by username)",
}


@dataclass(frozen=True)
class StudentLogin:
    """One student's login identifiers under the district's setting, and why they cannot sign in (if so)."""

    chromebook_login: str | None
    other_device_login: str | None
    problem: str | None  # NO_EMAIL | NO_USERNAME | None


def _present(value: str | None) -> str | None:
    """A blank identifier is no identifier (SIS exports often send "" for a missing email)."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def login_for(devices: StudentDevices, email: str | None, username: str | None) -> StudentLogin:
    """The student's logins under ``devices``; raises ValueError for an unknown setting."""
    try:
        fields = LOGIN_FIELDS[devices]
    except KeyError:
        raise ValueError(
            f"unknown student_devices {devices!r}; expected one of {', '.join(LOGIN_FIELDS)}"
        ) from None
    values = {"email": _present(email), "username": _present(username)}
    chromebook = values[fields["chromebook"]] if fields["chromebook"] else None
    other = values[fields["other_devices"]] if fields["other_devices"] else None
    problem = None
    if fields["other_devices"] and other is None:
        problem = NO_USERNAME
    elif devices == "chromebooks_only" and chromebook is None:
        problem = NO_EMAIL
    return StudentLogin(chromebook, other, problem)
