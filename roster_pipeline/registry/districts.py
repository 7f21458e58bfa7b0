"""The district registry: which SIS each district uses, how to reach it, and how to run it.

Operators keep one YAML file for all their districts (``ROSTER_DISTRICTS_FILE``; the example shipped
with the package is used otherwise).  It is validated entirely on load, so a typo in district 37 is
reported before any run starts, naming the district and the field.  Credentials are never in the file:
it holds the *names* of environment variables, and those are read only when a district actually runs,
so one district's missing secret never stops the others.

What differs between SIS (how URLs follow from the fields an admin copies, token auth, page size and
concurrency bounds) lives in ``roster_pipeline.registry.sis_profiles``; this module applies the district's profile.

Error messages and reprs never contain a secret value: the only place a value is read is
``District.credentials`` and it never formats what it read.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from roster_pipeline.oneroster.secure_url import url_problem
from roster_pipeline.records.catalogue import RESOURCES_BY_NAME
from roster_pipeline.registry.sis_profiles import (
    PROFILES,
    REGISTRY_MAX_CONCURRENCY,
    REGISTRY_MAX_PAGE_SIZE,
    ConnectionFields,
    OneRosterVersion,
    SisProfile,
    oneroster_version,
)

ENV_FILE_VARIABLE = "ROSTER_DISTRICTS_FILE"
EXAMPLE_FILE = Path(__file__).with_name("districts.example.yaml")

SisVendor = Literal["infinite_campus", "classlink", "powerschool", "skyward", "aeries", "generic"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Fields whose input is never echoed back in an error, whatever went wrong with them.
_SECRET_FIELDS = frozenset({"client_id_env", "client_secret_env"})
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")


class RegistryError(ValueError):
    """The registry file is unreadable or invalid; the message names the district and field."""


class MissingSecretError(RegistryError):
    """A district's credential env var is unset or empty at run time.

    Carries the district id and the variable's NAME only, so it can be logged, shown in the Dagster UI
    and emailed without leaking anything.
    """

    def __init__(self, district_id: str, env_var: str, role: str) -> None:
        self.district_id = district_id
        self.env_var = env_var
        super().__init__(
            f"district {district_id!r}: the {role} environment variable {env_var!r} is not set or empty; "
            f"set it in the environment of the Dagster code location (the registry holds only its name)"
        )


class _Model(BaseModel):
    # extra="forbid": a misspelt key (``pagesize``) must be an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _month_day_or_date(value: str) -> str:
    """Accept ``MM-DD`` (every year) or ``YYYY-MM-DD`` (one year only); reject impossible dates."""
    text = str(value).strip()
    match = _MONTH_DAY.match(text)
    try:
        if match:
            date(2024, int(match.group(1)), int(match.group(2)))  # 2024: leap year, so 02-29 is valid
        else:
            date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected 'MM-DD' or 'YYYY-MM-DD', got {text!r}") from None
    return text


def resolve_month_day(value: str, year: int) -> date:
    """The concrete date of an ``MM-DD``/``YYYY-MM-DD`` setting in a given calendar year."""
    if _MONTH_DAY.match(value):
        month, day = int(value[:2]), int(value[3:])
        if month == 2 and day == 29:
            try:
                return date(year, 2, 29)
            except ValueError:
                return date(year, 2, 28)
        return date(year, month, day)
    return date.fromisoformat(value)


MonthDay = Annotated[str, Field(description="'MM-DD' (every year) or 'YYYY-MM-DD'")]


class Schedule(_Model):
    """When a district syncs and which sync mode each run uses (schedules themselves: a later issue).

    The default follows Infinite Campus's consumer guidance: a nightly delta off-peak and a weekly full
    pull, the full pull being the only one allowed to infer deletions.
    """

    frequency: Literal["daily", "twice_daily", "weekly", "manual"] = "daily"
    time: str = "02:00"
    second_time: str | None = None  # twice_daily only; defaults to 12 hours after `time`
    day: Weekday | None = None  # weekly only
    sync_plan: Literal["delta_with_weekly_full", "full_always", "delta_always"] = "delta_with_weekly_full"
    full_sync_day: Weekday = "sunday"
    delta_overlap_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)

    @field_validator("time", "second_time")
    @classmethod
    def _hhmm(cls, value: str | None) -> str | None:
        if value is not None and not _HHMM.match(value):
            raise ValueError(f"expected 24-hour 'HH:MM', got {value!r}")
        return value

    @model_validator(mode="after")
    def _weekly_needs_day(self) -> Schedule:
        if self.frequency == "weekly" and self.day is None:
            raise ValueError("frequency 'weekly' needs 'day' (e.g. day: sunday)")
        if self.frequency != "weekly" and self.day is not None:
            raise ValueError(f"'day' only applies to frequency 'weekly', not {self.frequency!r}")
        if self.second_time is not None and self.frequency != "twice_daily":
            raise ValueError("'second_time' only applies to frequency 'twice_daily'")
        return self

    def sync_mode_on(self, day: date) -> Literal["full", "delta"]:
        """The sync mode a scheduled run on ``day`` (district-local date) should use."""
        if self.sync_plan == "full_always" or self.frequency == "weekly":
            return "full"
        if self.sync_plan == "delta_always":
            return "delta"
        return "full" if WEEKDAYS[day.weekday()] == self.full_sync_day else "delta"


class ThresholdOverrides(_Model):
    """Any subset of the threshold settings; unset fields fall back to the district's thresholds."""

    max_added_pct: float | None = Field(default=None, ge=0)
    max_deleted_pct: float | None = Field(default=None, ge=0, le=100)
    max_updated_pct: float | None = Field(default=None, ge=0, le=100)
    max_rejected_pct: float | None = Field(default=None, ge=0, le=100)
    min_changes: int | None = Field(default=None, ge=0)


class SchoolThresholds(_Model):
    """Per-school guard: one school vanishing must trip even when the district-wide % is small."""

    max_user_drop_pct: float = Field(default=20.0, ge=0, le=100)
    max_enrollment_drop_pct: float = Field(default=20.0, ge=0, le=100)
    min_drop: int = Field(default=10, ge=0)  # absolute floor, so a 4-student school losing 2 does not trip


class EffectiveThresholds(_Model):
    """The thresholds that apply to one resource, after per-resource overrides."""

    max_added_pct: float | None
    max_deleted_pct: float
    max_updated_pct: float
    max_rejected_pct: float
    min_changes: int


class Thresholds(_Model):
    """Import thresholds: a snapshot exceeding them is held for admin review.

    Percentages are of the resource's currently published (not deleted) rows; ``min_changes`` is an
    absolute floor below which no percentage trips, so a 5-record change in a tiny district passes.
    ``max_added_pct`` is off (None) by default: growth is rarely a data error.
    """

    max_added_pct: float | None = Field(default=None, ge=0)
    max_deleted_pct: float = Field(default=10.0, ge=0, le=100)
    max_updated_pct: float = Field(default=75.0, ge=0, le=100)
    max_rejected_pct: float = Field(default=1.0, ge=0, le=100)
    min_changes: int = Field(default=25, ge=0)
    per_school: SchoolThresholds = SchoolThresholds()
    resources: dict[str, ThresholdOverrides] = Field(default_factory=dict)

    @field_validator("resources")
    @classmethod
    def _known_resources(cls, value: dict[str, ThresholdOverrides]) -> dict[str, ThresholdOverrides]:
        unknown = sorted(set(value) - set(RESOURCES_BY_NAME))
        if unknown:
            raise ValueError(f"unknown resource(s) {unknown}; known: {', '.join(RESOURCES_BY_NAME)}")
        return value

    def for_resource(
        self, resource_name: str, relaxed: ThresholdOverrides | None = None
    ) -> EffectiveThresholds:
        """Resolve base → per-resource override → (rollover window) relaxed values."""
        merged: dict[str, Any] = {
            "max_added_pct": self.max_added_pct,
            "max_deleted_pct": self.max_deleted_pct,
            "max_updated_pct": self.max_updated_pct,
            "max_rejected_pct": self.max_rejected_pct,
            "min_changes": self.min_changes,
        }
        for layer in (self.resources.get(resource_name), relaxed):
            if layer is not None:
                merged.update({k: v for k, v in layer.model_dump().items() if v is not None})
        return EffectiveThresholds(**merged)


class ChangeWindow(_Model):
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _dates(cls, value: str) -> str:
        return _month_day_or_date(value)


class Rollover(_Model):
    """New-school-year handling.

    ``pause``: no imports from ``date`` until ``first_day`` of the new year (or an admin resumes);
    ``additions_only``: imports in that period add and update but never delete; ``none``: no special
    handling.  Inside ``expected_change_window`` the ``relaxed_thresholds`` apply.
    """

    date: str = "07-01"
    first_day: str | None = None
    mode: Literal["pause", "additions_only", "none"] = "none"
    expected_change_window: ChangeWindow | None = None
    relaxed_thresholds: ThresholdOverrides | None = None

    @field_validator("date", "first_day")
    @classmethod
    def _dates(cls, value: str | None) -> str | None:
        return None if value is None else _month_day_or_date(value)


class Pii(_Model):
    """Which kinds of student personal data the pipeline may fetch and keep for a district.

    ``demographics: false`` (birth date, sex, race and ethnicity flags...): the /demographics endpoint is
    never requested and nothing of it is stored; turning it off purges what the warehouse already holds
    for the district (published rows, history, staging, quarantine, field diffs), recorded in
    ``data_purges``.  On by default, as before this setting existed.
    """

    demographics: bool = True


class CsvBundleSettings(_Model):
    """Where a ``csv_bundle`` district's OneRoster 1.1 CSV zip comes from: exactly one of the two.

    ``path``: one zip file, re-read by every run (a district that overwrites it at a fixed place).
    ``drop_folder``: the folder an SFTP export drops bundles into; the drop-folder sensor starts a run per
    new bundle (complete: a ``.zip`` whose size and mtime have not changed for ``settle_seconds``) and
    moves it to ``processed/`` so it never runs twice.
    """

    path: str | None = None
    drop_folder: str | None = None
    settle_seconds: float = Field(default=60.0, ge=0, le=24 * 3600)

    @field_validator("path", "drop_folder")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return None if value is None else value.strip()

    @model_validator(mode="after")
    def _exactly_one(self) -> CsvBundleSettings:
        if (self.path is None) == (self.drop_folder is None):
            raise ValueError(
                "set exactly one of 'path' (one bundle zip) or 'drop_folder' (a folder new bundles land in)"
            )
        return self


TeachingRole = Literal["teacher", "administrator", "aide", "proctor"]


def _teachers_only() -> list[TeachingRole]:
    return ["teacher"]


class ClassTeachers(_Model):
    """Which enrollment roles the ``class_teachers`` table lists as a class's teachers.

    Teachers always; administrators, aides (OneRoster 1.2) or proctors only when the district opts in,
    e.g. ``class_teachers: {include_roles: [teacher, aide]}``: co-teaching aides are staff to some districts
    and not to others, and the product shows exactly the list the district chose.
    """

    include_roles: list[TeachingRole] = Field(default_factory=_teachers_only)

    @field_validator("include_roles")
    @classmethod
    def _teachers_always(cls, value: list[str]) -> list[str]:
        if "teacher" not in value:
            raise ValueError(
                "must include 'teacher' (the other roles are added to the teachers, never instead of them)"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"lists a role twice: {value}")
        return value


class District(_Model):
    """One district's settings. Holds env var NAMES for credentials, never values."""

    id: str
    name: str
    sis: SisVendor = "infinite_campus"
    # How the roster arrives (roster_pipeline.sources.protocol.ImportMethod): REST with OAuth2 by default.
    import_method: Literal["oneroster_rest", "oneroster_rest_oauth1", "oneroster_v1p2_rest", "csv_bundle"] = (
        "oneroster_rest"
    )
    api_host: str | None = None
    app_name: str | None = None
    token_url: str | None = None
    base_url: str | None = None
    # Required by the REST import methods (checked in ``_method_settings``); a csv_bundle district has none.
    client_id_env: str | None = None
    client_secret_env: str | None = None
    csv_bundle: CsvBundleSettings | None = None  # import_method csv_bundle only
    # token_auth, page_size and max_concurrency default to the SIS profile's values (sis_profiles.py) when
    # the district does not set them; the static defaults below only apply when `sis` itself is invalid.
    token_auth: Literal["basic", "form"] = "basic"
    # OAuth2 scope(s), space-separated, for SIS that grant a token only with them (some OneRoster 1.2 providers).
    token_scope: str | None = None
    page_size: int = Field(default=5000, ge=1, le=REGISTRY_MAX_PAGE_SIZE)
    max_concurrency: int = Field(default=5, ge=1, le=REGISTRY_MAX_CONCURRENCY)
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    timezone: str = "UTC"
    schedule: Schedule = Schedule()
    admin_emails: list[str] = Field(default_factory=list)
    student_devices: Literal["chromebooks_only", "no_chromebooks", "mixed"] = "mixed"
    class_teachers: ClassTeachers = ClassTeachers()
    thresholds: Thresholds = Thresholds()
    rollover: Rollover = Rollover()
    enabled: bool = True
    school_year: int | None = Field(default=None, ge=2000, le=2100)  # ending year: 2027 for 2026-27
    pii: Pii = Pii()

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        """Fill token_auth, page_size and max_concurrency from the SIS profile where the district leaves them out.

        Done before validation so the fields stay plain values for every reader (the client config, the
        benchmark); a value the district (or the registry's `defaults`) gives always wins.
        """
        if not isinstance(data, Mapping):
            return data
        sis = data.get("sis", "infinite_campus")
        profile = PROFILES.get(sis) if isinstance(sis, str) else None
        if profile is None:
            return data  # the `sis` field reports the problem
        filled = dict(data)
        filled.setdefault("token_auth", profile.token_auth)
        filled.setdefault("page_size", profile.default_page_size)
        filled.setdefault("max_concurrency", profile.default_concurrency)
        return filled

    @field_validator("page_size")
    @classmethod
    def _page_size_within_profile(cls, value: int, info: ValidationInfo) -> int:
        profile = PROFILES.get(info.data.get("sis", ""))
        if profile is not None and value > profile.max_page_size:
            raise ValueError(
                f"{value:,} is above the {profile.label} maximum of {profile.max_page_size:,} records per page "
                f"({profile.page_size_note}); the profile's default is {profile.default_page_size:,}"
            )
        return value

    @field_validator("max_concurrency")
    @classmethod
    def _concurrency_within_profile(cls, value: int, info: ValidationInfo) -> int:
        profile = PROFILES.get(info.data.get("sis", ""))
        if profile is not None and value > profile.max_concurrency:
            raise ValueError(
                f"{value} is above the {profile.label} maximum of {profile.max_concurrency} concurrent requests "
                f"({profile.concurrency_note}); the profile's default is {profile.default_concurrency}"
            )
        return value

    @field_validator("id")
    @classmethod
    def _partition_key(cls, value: str) -> str:
        # Dagster partition keys, table keys and file names: keep to a boring alphabet.
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", value):
            raise ValueError(
                f"{value!r} is not a valid district id: use lowercase letters, digits, '_' and '-' "
                "(starting with a letter or digit, at most 63 characters)"
            )
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @field_validator("client_id_env", "client_secret_env")
    @classmethod
    def _env_var_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # Never echo `value`: if someone pasted the actual key or secret here, the error must not leak it.
        hint = (
            "must be the NAME of an environment variable (UPPER_SNAKE_CASE, e.g. SPRINGFIELD_ONEROSTER_SECRET), "
            "not the credential itself"
        )
        if not _ENV_NAME.match(value):
            raise ValueError(f"{hint}; the value given does not look like a variable name (value not shown)")
        if "_" not in value and len(value) >= 16 and any(ch.isdigit() for ch in value):
            raise ValueError(f"{hint}; the value given looks like a key or secret (value not shown)")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            # OSError: the name became a path the OS refuses (too long, ...); still just an unknown zone.
            shown = value if len(value) <= 60 else value[:60] + "…"
            raise ValueError(
                f"unknown timezone {shown!r} (use an IANA name such as 'America/Chicago')"
            ) from None
        return value

    @field_validator("admin_emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _EMAIL.match(v)]
        if bad:
            raise ValueError(f"invalid email address(es): {', '.join(repr(b) for b in bad)}")
        return value

    @field_validator("api_host", "token_url", "base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value:
            raise ValueError("must not be empty")
        if any(ch.isspace() for ch in value):
            raise ValueError(f"must not contain spaces: {value!r}")
        return value

    @field_validator("token_url", "base_url")
    @classmethod
    def _secure_url(cls, value: str | None) -> str | None:
        # https only (loopback excepted): the token request carries the client secret, and every API
        # response student records.  The message never echoes the whole URL (it may hold credentials).
        problem = None if value is None else url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("api_host")
    @classmethod
    def _secure_api_host(cls, value: str | None) -> str | None:
        # A bare host derives https URLs; an origin with a scheme (the simulator's) must pass the same rule.
        if value is not None and "://" in value:
            problem = url_problem(value)
            if problem is not None:
                raise ValueError(f"{problem} (api_host derives token_url and base_url)")
        return value

    @model_validator(mode="after")
    def _method_settings(self) -> District:
        """Each import method's own settings, and none of another's (a stray csv_bundle block is a mistake)."""
        if self.import_method == "csv_bundle":
            if self.csv_bundle is None:
                raise ValueError(
                    "import_method 'csv_bundle' needs a 'csv_bundle' section with 'path' (one bundle zip) or "
                    "'drop_folder' (a folder new bundles land in)"
                )
        elif self.csv_bundle is not None:
            raise ValueError(
                f"'csv_bundle' only applies to import_method 'csv_bundle', not {self.import_method!r}"
            )
        else:
            missing = [name for name in ("client_id_env", "client_secret_env") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"import_method {self.import_method!r} needs {' and '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _urls_resolvable(self) -> District:
        """The SIS profile can resolve every URL the import method needs (a CSV bundle needs none).

        Each problem names the field to fix and what to copy from where in the SIS's admin screens.
        """
        problems = self.profile.problems(self._connection_fields, self.import_method)
        if problems:
            # One line per problem, each naming the district, as the registry reports every other error.
            raise ValueError(f"\n  district {self.id!r}: ".join(str(p) for p in problems))
        for field, url in (("token_url", self._token_url), ("base_url", self._base_url)):
            problem = (
                None if url is None else url_problem(url)
            )  # derived URLs too, whatever api_host looked like
            if problem is not None:
                raise ValueError(f"{field} {problem}")
        return self

    @property
    def profile(self) -> SisProfile:
        """What this district's SIS needs and tolerates (URL layout, token auth, page and concurrency limits)."""
        return PROFILES[self.sis]

    @property
    def oneroster_version(self) -> OneRosterVersion | None:
        """The OneRoster REST version the import method speaks (None for a CSV bundle)."""
        return oneroster_version(self.import_method)

    @property
    def _connection_fields(self) -> ConnectionFields:
        return ConnectionFields(
            api_host=self.api_host, app_name=self.app_name, token_url=self.token_url, base_url=self.base_url
        )

    @property
    def _token_url(self) -> str | None:
        return self.profile.token_url(self._connection_fields)

    @property
    def _base_url(self) -> str | None:
        version = self.oneroster_version
        return None if version is None else self.profile.base_url(self._connection_fields, version)

    @property
    def token_url_resolved(self) -> str:
        """The OAuth2 token endpoint: an explicit ``token_url`` wins over the SIS profile's layout.

        Raises ValueError (naming the district) when the district has none: an OAuth 1.0a or CSV bundle
        district whose profile derives no token endpoint and that sets no ``token_url``.
        """
        url = self._token_url
        if url is None:
            raise ValueError(
                f"district {self.id!r}: no token URL (sis {self.sis!r}, import_method {self.import_method!r} "
                "needs none); set token_url to give one"
            )
        return url

    @property
    def base_url_resolved(self) -> str:
        """The OneRoster base for the import method's version (1.2 for ``oneroster_v1p2_rest``, 1.1 otherwise).

        An explicit ``base_url`` wins over the SIS profile's layout.  Raises ValueError (naming the district)
        for a CSV bundle district, which reads files and has no API base.
        """
        url = self._base_url
        if url is None:
            raise ValueError(
                f"district {self.id!r}: no OneRoster base URL (import_method {self.import_method!r} reads no API)"
            )
        return url

    def excluded_resources(self) -> dict[str, str]:
        """{resource name: why} for the resources this district never fetches nor stores (PII settings)."""
        excluded: dict[str, str] = {}
        if not self.pii.demographics:
            excluded["demographics"] = (
                f"district {self.id!r}: demographics are switched off (pii: demographics: false in the registry); "
                "never fetched, never stored"
            )
        return excluded

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def credentials(self, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
        """Read (client_id, client_secret) from the environment, at run time, for this district only."""
        env = os.environ if environ is None else environ
        if self.client_id_env is None or self.client_secret_env is None:
            raise RegistryError(
                f"district {self.id!r}: import_method {self.import_method!r} uses no credentials"
            )
        client_id = env.get(self.client_id_env, "")
        if not client_id.strip():
            raise MissingSecretError(self.id, self.client_id_env, "client id")
        client_secret = env.get(self.client_secret_env, "")
        if not client_secret.strip():
            raise MissingSecretError(self.id, self.client_secret_env, "client secret")
        return client_id, client_secret


class Registry:
    """All districts of one registry file, in file order."""

    def __init__(self, districts: Mapping[str, District], path: Path | None = None) -> None:
        self.districts: dict[str, District] = dict(districts)
        self.path = path

    def get(self, district_id: str) -> District:
        try:
            return self.districts[district_id]
        except KeyError:
            known = ", ".join(self.districts) or "(none)"
            raise KeyError(f"unknown district {district_id!r}; known: {known}") from None

    def enabled(self) -> list[District]:
        return [d for d in self.districts.values() if d.enabled]

    def ids(self) -> list[str]:
        return list(self.districts)

    def __iter__(self) -> Iterator[District]:
        return iter(self.districts.values())

    def __len__(self) -> int:
        return len(self.districts)

    def __contains__(self, district_id: object) -> bool:
        return district_id in self.districts

    def __repr__(self) -> str:
        return f"Registry(path={str(self.path)!r}, districts={list(self.districts)!r})"


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults under a district: nested mappings merge key by key, lists and scalars are replaced."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_error(district_id: str, error: Mapping[str, Any]) -> str:
    loc = ".".join(str(part) for part in error.get("loc", ())) or "(district)"
    message = str(error.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        message = "unknown field (check the spelling)"
    elif kind == "missing":
        message = "required field is missing"
    elif not any(part in _SECRET_FIELDS for part in map(str, error.get("loc", ()))):
        value = error.get("input")
        if isinstance(value, str | int | float | bool) and kind not in ("value_error", "assertion_error"):
            message = f"{message} (got {value!r})"
    if loc == "(district)":
        return f"district {district_id!r}: {message}"
    return f"district {district_id!r}: field {loc!r}: {message}"


def parse_registry(data: Any, path: Path | None = None) -> Registry:
    """Validate an already-parsed registry document; every problem is reported, not just the first."""
    where = f" in {path}" if path else ""
    if not isinstance(data, Mapping):
        raise RegistryError(f"registry{where}: expected a mapping with a 'districts' list at the top level")
    unknown = sorted(set(data) - {"defaults", "districts"})
    if unknown:
        raise RegistryError(
            f"registry{where}: unknown top-level key(s) {unknown}; expected 'defaults' and 'districts'"
        )
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise RegistryError(f"registry{where}: 'defaults' must be a mapping of district fields")
    if "id" in defaults or "name" in defaults:
        raise RegistryError(f"registry{where}: 'defaults' cannot set 'id' or 'name' (they are per district)")
    entries = data.get("districts")
    if not isinstance(entries, list):
        raise RegistryError(f"registry{where}: 'districts' must be a list of districts (each with an 'id')")

    problems: list[str] = []
    districts: dict[str, District] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            problems.append(f"district #{index + 1}: expected a mapping of fields")
            continue
        district_id = str(entry.get("id", f"#{index + 1}"))
        if district_id in districts:
            problems.append(f"district {district_id!r}: duplicate id (ids must be unique in the registry)")
            continue
        try:
            district = District.model_validate(_deep_merge(defaults, entry))
        except ValidationError as exc:
            problems.extend(_format_error(district_id, err) for err in exc.errors())
            continue
        districts[district.id] = district
    if problems:
        raise RegistryError(f"invalid district registry{where}:\n  " + "\n  ".join(problems))
    return Registry(districts, path)


def registry_path(path: str | Path | None = None) -> Path:
    """Explicit path → ``ROSTER_DISTRICTS_FILE`` → the example shipped in the package."""
    if path is not None:
        return Path(path)
    from_env = os.environ.get(ENV_FILE_VARIABLE, "").strip()
    return Path(from_env) if from_env else EXAMPLE_FILE


def load_registry(path: str | Path | None = None) -> Registry:
    """Load and validate the registry; raises RegistryError naming the district and field."""
    resolved = registry_path(path)
    try:
        text = resolved.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"cannot read district registry {resolved}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"district registry {resolved} is not valid YAML: {exc}") from None
    return parse_registry(data, resolved)


__all__ = [
    "ChangeWindow",
    "ClassTeachers",
    "CsvBundleSettings",
    "District",
    "EffectiveThresholds",
    "MissingSecretError",
    "Pii",
    "Registry",
    "RegistryError",
    "Rollover",
    "Schedule",
    "SchoolThresholds",
    "ThresholdOverrides",
    "Thresholds",
    "load_registry",
    "parse_registry",
    "registry_path",
    "resolve_month_day",
]
