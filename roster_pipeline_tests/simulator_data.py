"""A small hand-made district with known contents, so server tests can assert exact answers.

Independent of the generator on purpose: server tests must pin down query semantics (which
records a filter returns, in which order) without depending on generated randomness.
"""

from __future__ import annotations

from typing import Any

from roster_pipeline.simulator.district import SimulatedDistrict

OLD = "2026-08-01T12:00:00.000Z"
NEW = "2026-11-26T08:30:00.000Z"


def ref(kind: str, collection: str, sourced_id: str) -> dict[str, str]:
    return {"href": f"/{collection}/{sourced_id}", "sourcedId": sourced_id, "type": kind}


def _base(sourced_id: str, modified: str = OLD, status: str = "active") -> dict[str, Any]:
    return {"sourcedId": sourced_id, "status": status, "dateLastModified": modified}


def hand_made_district() -> SimulatedDistrict:
    """1 district org, 3 schools; 1 year, 2 terms, 4 grading periods; 4 classes; 3 teachers,
    9 students, 1 guardian; teacher and student enrollments; demographics for each student."""
    d = SimulatedDistrict(name="Hand Made USD", seed=0, size="tiny", school_year=2027)
    orgs, sessions = d.collections["orgs"], d.collections["academicSessions"]
    orgs["district-1"] = {
        **_base("district-1"),
        "name": "Hand Made USD",
        "type": "district",
        "identifier": "HM-D",
        "children": [ref("org", "orgs", f"school-{i}") for i in (1, 2, 3)],
    }
    for i in (1, 2, 3):
        orgs[f"school-{i}"] = {
            **_base(f"school-{i}", NEW if i == 3 else OLD),
            "name": f"School {i}",
            "type": "school",
            "identifier": f"HM-S{i}",
            "parent": ref("org", "orgs", "district-1"),
        }
    sessions["year-2027"] = {
        **_base("year-2027"),
        "title": "2026-2027",
        "type": "schoolYear",
        "startDate": "2026-08-15",
        "endDate": "2027-06-10",
        "schoolYear": "2027",
        "children": [ref("academicSession", "academicSessions", t) for t in ("term-1", "term-2")],
    }
    for t, (start, end) in {
        "term-1": ("2026-08-15", "2027-01-10"),
        "term-2": ("2027-01-11", "2027-06-10"),
    }.items():
        sessions[t] = {
            **_base(t),
            "title": f"Semester {t[-1]}",
            "type": "term",
            "startDate": start,
            "endDate": end,
            "schoolYear": "2027",
            "parent": ref("academicSession", "academicSessions", "year-2027"),
        }
        for q in (1, 2):
            gp = f"gp-{t[-1]}-{q}"
            sessions[gp] = {
                **_base(gp),
                "title": f"Quarter {t[-1]}.{q}",
                "type": "gradingPeriod",
                "startDate": start,
                "endDate": end,
                "schoolYear": "2027",
                "parent": ref("academicSession", "academicSessions", t),
            }
    courses, classes = d.collections["courses"], d.collections["classes"]
    for c, (title, school) in {"course-math": ("Math", 1), "course-art": ("Art", 2)}.items():
        courses[c] = {
            **_base(c),
            "title": title,
            "courseCode": title.upper(),
            "schoolYear": ref("academicSession", "academicSessions", "year-2027"),
            "org": ref("org", "orgs", f"school-{school}"),
            "grades": ["09"],
            "subjects": [title],
        }
    layout = {  # class -> (course, school, term)
        "class-a": ("course-math", 1, "term-1"),
        "class-b": ("course-math", 1, "term-2"),
        "class-c": ("course-art", 2, "term-1"),
        "class-d": ("course-art", 2, "term-2"),
    }
    for cid, (course, school, term) in layout.items():
        classes[cid] = {
            **_base(cid, NEW if cid == "class-d" else OLD),
            "title": f"{course[7:].title()} {cid[-1].upper()}",
            "classCode": cid.upper(),
            "classType": "scheduled",
            "location": f"Room {cid[-1]}",
            "grades": ["09"],
            "subjects": [course[7:]],
            "course": ref("course", "courses", course),
            "school": ref("org", "orgs", f"school-{school}"),
            "terms": [ref("academicSession", "academicSessions", term)],
            "periods": "1",
        }
    users, enrollments, demographics = (
        d.collections["users"],
        d.collections["enrollments"],
        d.collections["demographics"],
    )

    def user(
        uid: str, role: str, given: str, family: str, school: int, email: str | None, **extra: Any
    ) -> None:
        users[uid] = {
            **_base(uid, extra.pop("modified", OLD), extra.pop("status", "active")),
            "username": uid,
            "userIds": [{"type": "LDAP", "identifier": uid}],
            "enabledUser": "true",
            "givenName": given,
            "familyName": family,
            "role": role,
            "identifier": uid.upper(),
            "orgs": [ref("org", "orgs", f"school-{school}")],
            "agents": [],
            "grades": ["09"] if role == "student" else [],
            **({"email": email} if email else {}),
            **extra,
        }

    user("teacher-1", "teacher", "Ada", "Lovelace", 1, "ada@hm.example.org")
    user("teacher-2", "teacher", "Grace", "Hopper", 2, "grace@hm.example.org", modified=NEW)
    user("teacher-3", "teacher", "Alan", "Turing", 1, None)
    families = ["Azure", "Baker", "Carter", "Diaz", "Evans", "Fox", "Garcia", "Hill", "Ito"]
    for n, family in enumerate(families, start=1):
        user(
            f"stud{n}",
            "student",
            "Smith" if n == 1 else f"Kid{n}",
            family,
            1 if n <= 5 else 2,
            f"stud{n}@students.hm.example.org" if n % 3 else None,
            modified=NEW if n in (2, 7) else OLD,
            status="tobedeleted" if n == 9 else "active",
        )
    user(
        "guardian-1",
        "guardian",
        "Pat",
        "Azure",
        1,
        "pat@home.example.org",
        agents=[ref("user", "users", "stud1")],
    )
    users["stud1"]["agents"] = [ref("user", "users", "guardian-1")]

    def enroll(eid: str, uid: str, cid: str, role: str, primary: str, modified: str = OLD) -> None:
        school = layout[cid][1]
        enrollments[eid] = {
            **_base(eid, modified),
            "user": ref("user", "users", uid),
            "class": ref("class", "classes", cid),
            "school": ref("org", "orgs", f"school-{school}"),
            "role": role,
            "primary": primary,
            "beginDate": "2026-08-15",
            "endDate": "2027-06-10",
        }

    enroll("e-t1-a", "teacher-1", "class-a", "teacher", "true")
    enroll("e-t3-a", "teacher-3", "class-a", "teacher", "false")  # co-teacher
    enroll("e-t1-b", "teacher-1", "class-b", "teacher", "true")
    enroll("e-t2-c", "teacher-2", "class-c", "teacher", "true", NEW)
    # class-d has no teacher, as happens in real districts.
    for n in range(1, 10):
        for cid in ("class-a", "class-b") if n <= 5 else ("class-c", "class-d"):
            enroll(f"e-s{n}-{cid[-1]}", f"stud{n}", cid, "student", "false", NEW if n == 7 else OLD)
        demographics[f"stud{n}"] = {
            **_base(f"stud{n}"),
            "birthDate": f"2011-0{1 + n % 9}-15",
            "sex": "female" if n % 2 else "male",
            "americanIndianOrAlaskaNative": "false",
            "asian": "true" if n == 4 else "false",
            "blackOrAfricanAmerican": "false",
            "nativeHawaiianOrOtherPacificIslander": "false",
            "white": "false" if n == 4 else "true",
            "demographicRaceTwoOrMoreRaces": "false",
            "hispanicOrLatinoEthnicity": "true" if n in (3, 6) else "false",
        }
    return d
