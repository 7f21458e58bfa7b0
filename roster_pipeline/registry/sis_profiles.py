"""SIS profiles: everything that differs between the SIS a district can use, in one frozen record each.

All six speak OneRoster, but they differ in what a district administrator can copy from the SIS's
admin screens and how the token and API URLs follow from it, in where the OAuth2 client credentials go
on the token request (HTTP Basic or the form body), in how large a page and how many concurrent
requests the SIS tolerates, and in quirks an operator should know.  Keeping that here, as data, means
the registry (``roster_pipeline.registry.districts``) validates every district the same way, its errors can say
*what to copy from where*, and the per-SIS table of docs/configuration.md is rendered from the same records
(``setup_table_markdown``), so the documentation cannot drift from what the code accepts.

Where a vendor's URL layout could not be confirmed from its own documentation, the profile derives
nothing and the administrator gives the URL explicitly; the profile says so.  An explicit ``token_url``
or ``base_url`` always wins over a derived one (the URL the SIS shows is authoritative).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

OneRosterVersion = Literal["v1p1", "v1p2"]
TokenAuth = Literal["basic", "form"]

#: The registry's absolute bounds, whatever the SIS: a profile's maximum is never above these.
REGISTRY_MAX_PAGE_SIZE = 50_000
REGISTRY_MAX_CONCURRENCY = 10

#: Import methods that sign every request with OAuth 1.0a: there is no token endpoint to call.
_SIGNED_METHODS = frozenset({"oneroster_rest_oauth1"})
#: Import methods that read files, not an API: no URLs at all.
_FILE_METHODS = frozenset({"csv_bundle"})


def oneroster_version(import_method: str) -> OneRosterVersion | None:
    """The OneRoster REST version an import method speaks; None when it reads no API (a CSV bundle)."""
    if import_method in _FILE_METHODS:
        return None
    return "v1p2" if import_method == "oneroster_v1p2_rest" else "v1p1"


def needs_token_url(import_method: str) -> bool:
    """OAuth2 methods fetch a bearer token; OAuth 1.0a signs each request and a CSV bundle calls nothing."""
    return import_method not in _SIGNED_METHODS and import_method not in _FILE_METHODS


def needs_base_url(import_method: str) -> bool:
    return import_method not in _FILE_METHODS


def root_of(api_host: str) -> str:
    """``api_host`` as an absolute root: a bare host means https; an origin with a scheme is kept (loopback)."""
    text = api_host.strip().rstrip("/")
    if "://" in text and text.split("://", 1)[0].lower() in ("http", "https"):
        return text
    return f"https://{text}"


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class ConnectionFields:
    """The registry fields an administrator fills in to reach the SIS (values as validated)."""

    api_host: str | None = None
    app_name: str | None = None
    token_url: str | None = None
    base_url: str | None = None


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with the connection fields: the field to fix and what to copy from where."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"field {self.field!r}: {self.message}"


@dataclass(frozen=True, eq=False)
class SisProfile:
    """What one SIS needs and tolerates.  Templates use ``{root}`` (``root_of(api_host)``) and ``{app_name}``.

    ``token_url_template`` / ``base_url_templates`` are None / absent where the vendor's layout could not
    be confirmed: the administrator then gives that URL explicitly.  ``root_from_base_url``: when
    ``api_host`` is not given, the origin of an explicit ``base_url`` serves as the root (PowerSchool's
    token endpoint lives on the same server as its API).  ``api_host_may_have_path``: the "host" the SIS
    shows is really a URL prefix (Aeries runs under ``/aeries`` on many servers).
    """

    name: str
    label: str
    token_url_template: str | None
    base_url_templates: Mapping[str, str]
    token_auth: TokenAuth
    default_page_size: int
    max_page_size: int
    default_concurrency: int
    max_concurrency: int
    credentials_from: str
    api_host_from: str | None = None
    app_name_from: str | None = None
    token_url_from: str = ""
    base_url_from: str = ""
    page_size_note: str = ""
    concurrency_note: str = ""
    quirks: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    root_from_base_url: bool = False
    api_host_may_have_path: bool = False
    root_shown: str = "https://HOST"  # how `{root}` reads in the documented table
    #: Say more than "derives no token_url" where the SIS has a reason: keyed "token_url" or
    #: "token_url:<import_method>" (the latter wins), likewise for base_url.
    missing_url_hints: Mapping[str, str] = field(default_factory=dict)
    #: Base URL path fragments the SIS no longer serves (fragment -> what to copy instead).
    retired_base_urls: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Profiles are constants: a wrong one is a programming error, refused at import.
        if not 1 <= self.default_page_size <= self.max_page_size <= REGISTRY_MAX_PAGE_SIZE:
            raise ValueError(
                f"profile {self.name!r}: page sizes must satisfy 1 <= default <= max <= registry cap"
            )
        if not 1 <= self.default_concurrency <= self.max_concurrency <= REGISTRY_MAX_CONCURRENCY:
            raise ValueError(
                f"profile {self.name!r}: concurrency must satisfy 1 <= default <= max <= registry cap"
            )
        for name in ("base_url_templates", "missing_url_hints", "retired_base_urls"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    @property
    def uses_app_name(self) -> bool:
        templates = [self.token_url_template or "", *self.base_url_templates.values()]
        return any("{app_name}" in t for t in templates)

    @property
    def uses_api_host(self) -> bool:
        templates = [self.token_url_template or "", *self.base_url_templates.values()]
        return any("{root}" in t for t in templates)

    # --- URL derivation -------------------------------------------------------------------------------

    def _root(self, fields: ConnectionFields) -> str | None:
        if fields.api_host:
            return root_of(fields.api_host)
        if self.root_from_base_url and fields.base_url:
            return origin_of(fields.base_url)
        return None

    def _fill(self, template: str | None, fields: ConnectionFields) -> str | None:
        if template is None:
            return None
        root = self._root(fields)
        if "{root}" in template and root is None:
            return None
        if "{app_name}" in template and not fields.app_name:
            return None
        return template.format(root=root or "", app_name=fields.app_name or "")

    def token_url(self, fields: ConnectionFields) -> str | None:
        """The token endpoint: the explicit one, else derived from the profile's layout, else None."""
        return fields.token_url or self._fill(self.token_url_template, fields)

    def base_url(self, fields: ConnectionFields, version: OneRosterVersion) -> str | None:
        """The OneRoster base for ``version``: the explicit one, else derived, else None."""
        return fields.base_url or self._fill(self.base_url_templates.get(version), fields)

    # --- validation -----------------------------------------------------------------------------------

    def problems(self, fields: ConnectionFields, import_method: str) -> list[FieldProblem]:
        """Everything that keeps this district's URLs from being resolved, each naming the field to fix."""
        found: list[FieldProblem] = []
        found.extend(self._api_host_shape(fields))
        if self.uses_app_name and fields.app_name is not None:
            found.extend(self._app_name_shape(fields.app_name))
        if found:
            return found  # derived URLs built from malformed parts would only add confusing errors
        version = oneroster_version(import_method)
        wanted: list[tuple[str, str | None]] = []  # (url field, its template) the import method needs
        if needs_token_url(import_method) and self.token_url(fields) is None:
            wanted.append(("token_url", self.token_url_template))
        if version is not None and needs_base_url(import_method):
            if self.base_url(fields, version) is None:
                wanted.append(("base_url", self.base_url_templates.get(version)))
            elif fields.base_url:
                found.extend(self._explicit_base_url(fields.base_url, version, import_method))
        found[:0] = self._missing(wanted, fields, import_method, version)
        return found

    def _api_host_shape(self, fields: ConnectionFields) -> list[FieldProblem]:
        if not fields.api_host or self.api_host_may_have_path:
            return []
        try:
            parts = urlsplit(root_of(fields.api_host))
        except ValueError:
            return [
                FieldProblem("api_host", f"is not a valid host; copy {self.api_host_from or 'the SIS host'}")
            ]
        if parts.path.strip("/") or parts.query or parts.fragment:
            return [
                FieldProblem(
                    "api_host",
                    f"must be the host only (like district.example.org), not a URL with a path or query; "
                    f"for {self.label} copy {self.api_host_from or 'the host part of the URL'}",
                )
            ]
        return []

    def _app_name_shape(self, app_name: str) -> list[FieldProblem]:
        if all(ch.isalnum() or ch in "_.-" for ch in app_name):
            return []
        return [
            FieldProblem(
                "app_name",
                f"must be the app name alone (letters, digits, '_', '.', '-'); copy {self.app_name_from}",
            )
        ]

    def _missing(
        self,
        wanted: list[tuple[str, str | None]],
        fields: ConnectionFields,
        import_method: str,
        version: OneRosterVersion | None,
    ) -> list[FieldProblem]:
        """Why the wanted URLs cannot be resolved: one problem per field to fix, saying where to copy it from."""
        found: list[FieldProblem] = []
        needs: dict[str, list[str]] = {}  # input field -> the URL fields it would derive
        for url_field, template in wanted:
            if template is not None:
                if "{root}" in template and self._root(fields) is None:
                    needs.setdefault("api_host", []).append(url_field)
                if "{app_name}" in template and not fields.app_name:
                    needs.setdefault("app_name", []).append(url_field)
                continue
            hint = self.missing_url_hints.get(f"{url_field}:{import_method}") or self.missing_url_hints.get(
                url_field
            )
            where = self.token_url_from if url_field == "token_url" else self.base_url_from
            if hint:
                text = hint
            elif url_field == "base_url" and self.base_url_templates:
                derived = ", ".join(sorted(self.base_url_templates)).replace("v1p", "1.")
                text = (
                    f"sis {self.name!r} derives only the OneRoster {derived} base URL; for import_method "
                    f"{import_method!r} set base_url to the {'1.2' if version == 'v1p2' else '1.1'} base URL "
                    f"{self.label} gives"
                )
            else:
                text = f"sis {self.name!r} derives no {url_field}: set it, copying {where}"
                if fields.api_host and not self.uses_api_host:
                    text += f" (api_host is not used for sis {self.name!r})"
            found.append(FieldProblem(url_field, text))
        for input_field, derived_fields in needs.items():
            targets = " and ".join(derived_fields)
            if input_field == "api_host":
                also = " (or from base_url's server)" if self.root_from_base_url else ""
                text = (
                    f"missing: sis {self.name!r} derives {targets} from api_host{also}; copy "
                    f"{self.api_host_from or 'the SIS host'} (or set {targets} explicitly)"
                )
            else:
                text = (
                    f"missing: sis {self.name!r} derives {targets} from api_host and app_name; copy "
                    f"{self.app_name_from} (or set {targets} explicitly)"
                )
            found.append(FieldProblem(input_field, text))
        return found

    def _explicit_base_url(
        self, base_url: str, version: OneRosterVersion, import_method: str
    ) -> list[FieldProblem]:
        path = urlsplit(base_url).path.rstrip("/").lower()
        found: list[FieldProblem] = []
        if version == "v1p2" and path.endswith("/v1p1"):
            found.append(
                FieldProblem(
                    "base_url",
                    f"is a OneRoster 1.1 URL (ends in /v1p1) but import_method is {import_method!r} (OneRoster 1.2): "
                    "copy the 1.2 base URL (ending in /ims/oneroster/rostering/v1p2) or use import_method oneroster_rest",
                )
            )
        if version == "v1p1" and path.endswith("/v1p2"):
            found.append(
                FieldProblem(
                    "base_url",
                    f"is a OneRoster 1.2 URL (ends in /v1p2) but import_method is {import_method!r} (OneRoster 1.1): "
                    "set import_method: oneroster_v1p2_rest, or copy the 1.1 base URL (ending in /ims/oneroster/v1p1)",
                )
            )
        for fragment, message in self.retired_base_urls.items():
            if fragment in path:
                found.append(FieldProblem("base_url", message))
        return found

    # --- what the admin reads -------------------------------------------------------------------------

    def layout_text(self) -> str:
        """The derived URLs as templates, for docs/configuration.md and `describe()`."""
        parts = []
        token = self.token_url_template
        parts.append(f"token `{self._shown(token)}`" if token else "token URL: explicit")
        for version, label in (("v1p1", "1.1"), ("v1p2", "1.2")):
            template = self.base_url_templates.get(version)
            parts.append(f"{label} base `{self._shown(template)}`" if template else f"{label} base: explicit")
        return "; ".join(parts)

    def _shown(self, template: str | None) -> str:
        return (template or "").replace("{root}", self.root_shown).replace("{app_name}", "APP")


# ---------------------------------------------------------------------------------------------------------
# The profiles.  Sources are the vendors' own pages unless said otherwise; read them before changing a value.
# ---------------------------------------------------------------------------------------------------------

INFINITE_CAMPUS = SisProfile(
    name="infinite_campus",
    label="Infinite Campus",
    token_url_template="{root}/campus/oauth2/token?appName={app_name}",
    base_url_templates={
        "v1p1": "{root}/campus/api/oneroster/v1p1/{app_name}/ims/oneroster/v1p1",
        "v1p2": "{root}/campus/api/oneroster/v1p2/{app_name}/ims/oneroster/rostering/v1p2",
    },
    token_auth="basic",
    default_page_size=5000,
    max_page_size=50_000,
    default_concurrency=5,
    max_concurrency=5,
    credentials_from=(
        "Campus: Digital Learning Applications Configuration → the application's tile → Add (or Edit) OneRoster "
        "Connection, OneRoster 1.1 or 1.2 with OAuth 2.0 → Client ID and Client Secret under Information to Share"
    ),
    api_host_from=(
        "the host of the Token URL under Information to Share (https://HOST/campus/oauth2/token?appName=APP)"
    ),
    app_name_from="the appName value at the end of that Token URL (…/campus/oauth2/token?appName=APP)",
    token_url_from="the Token URL under Information to Share",
    base_url_from="the Base URL under Information to Share",
    page_size_note="Campus serves up to 50,000 records per page since Campus.1645",
    concurrency_note="Campus asks for at most 5 concurrent requests off-peak and serial requests during peak hours",
    quirks=(
        "The Base URL Campus shows under Information to Share is authoritative: if it differs from the derived "
        "one (some guides show https://HOST/campus/api/ims/oneroster/rostering/v1p2 for 1.2), copy it into base_url.",
        "Legacy Base URLs (…/campus/oneroster/APP/…, the OAuth 1 era) stop working with Campus.2651; copy the "
        "current Base URL instead.",
        "OAuth 1.0a connections were retired in 2023: use OAuth 2.0 (import_method oneroster_rest or "
        "oneroster_v1p2_rest).",
        "Only the active school year is served; moving a connection from 1.1 to 1.2 gives every user a new "
        "sourcedId (expect a large change on the first 1.2 import).",
        "Campus asks consumers for a weekly full and a nightly delta sync, off-peak (the default schedule).",
    ),
    sources=(
        "https://kb.infinitecampus.com/help/guidelines-for-oneroster-api-consumers",
        "https://kb.infinitecampus.com/help/update-oneroster-connections-legacy-configurations",
        "https://kb.infinitecampus.com/help/oneroster-migration-instructions",
    ),
    retired_base_urls={
        "/campus/oneroster/": (
            "is a legacy Campus Base URL (…/campus/oneroster/APP/…), which stops working with Campus.2651: copy the "
            "current Base URL from Information to Share (Digital Learning Applications Configuration → the "
            "connection), or remove base_url to derive it from api_host and app_name"
        ),
    },
)

CLASSLINK = SisProfile(
    name="classlink",
    label="ClassLink Roster Server",
    token_url_template=None,
    base_url_templates={"v1p1": "{root}/ims/oneroster/v1p1"},
    token_auth="basic",
    default_page_size=1000,
    max_page_size=REGISTRY_MAX_PAGE_SIZE,
    default_concurrency=2,
    max_concurrency=REGISTRY_MAX_CONCURRENCY,
    credentials_from=(
        "ClassLink: the OneRoster server's direct-access credentials for the application (Roster Server console, "
        "the application's OneRoster server details): server URL, client ID and client secret"
    ),
    api_host_from="the host of that server URL, e.g. TENANT-XX-v2.rosterserver.com",
    token_url_from=(
        "OAuth2 only, not needed with import_method oneroster_rest_oauth1 (the OAuth 1.0a signing ClassLink "
        "documents for direct access): the token URL ClassLink gives for your Roster Server"
    ),
    base_url_from="the server URL followed by /ims/oneroster/v1p1 (1.1) or the 1.2 base URL ClassLink gives",
    page_size_note="no published maximum",
    concurrency_note="no published guidance; the Roster Server is shared by the district's apps, so start low",
    quirks=(
        "Direct access to a Roster Server is signed with OAuth 1.0a (HMAC-SHA256): use import_method "
        "oneroster_rest_oauth1, which needs only the server (api_host or base_url), no token URL.",
        "https://launchpad.classlink.com/oauth2/v2/token is the token endpoint of ClassLink's SSO sign-in, not a "
        "OneRoster client-credentials endpoint.",
        "Records' href values point at the Roster Server's own host; the pipeline never follows them.",
    ),
    sources=(
        "https://developer.classlink.com/reference/accessing-data",
        "https://developer.classlink.com/reference/obtaining-list-of-districts-and-servers",
    ),
    missing_url_hints={
        "token_url:oneroster_rest": (
            "sis 'classlink' has no OAuth2 token URL to derive: a ClassLink Roster Server signs requests with "
            "OAuth 1.0a, so set import_method: oneroster_rest_oauth1 (no token URL needed), or set token_url to the "
            "OAuth2 token URL ClassLink gives for your Roster Server"
        ),
        "token_url:oneroster_v1p2_rest": (
            "sis 'classlink' has no OneRoster 1.2 token URL to derive: set token_url to the OAuth2 token URL ClassLink "
            "gives for your Roster Server's 1.2 API"
        ),
    },
)

POWERSCHOOL = SisProfile(
    name="powerschool",
    label="PowerSchool SIS",
    token_url_template="{root}/oauth/access_token",
    base_url_templates={},
    token_auth="basic",
    default_page_size=1000,
    max_page_size=REGISTRY_MAX_PAGE_SIZE,
    default_concurrency=2,
    max_concurrency=REGISTRY_MAX_CONCURRENCY,
    credentials_from=(
        "PowerSchool: System → System Settings → Plugin Management Configuration → the OneRoster plugin → "
        "Data Provider Configuration: Client ID and Client Secret (set Maximum Page Size there too)"
    ),
    api_host_from="the PowerSchool server's host (the address of the admin sign-in page)",
    token_url_from="https://HOST/oauth/access_token (derived from api_host or from base_url's server)",
    base_url_from=(
        "the OneRoster base URL documented by the plugin that serves OneRoster on your PowerSchool server (not "
        "derived: no single layout could be confirmed)"
    ),
    page_size_note="the plugin's Maximum Page Size caps each page; vendors ask districts to set it to 1,000",
    concurrency_note="no published guidance; PowerSchool also serves staff during the day, so start low",
    quirks=(
        "A page_size above the plugin's Maximum Page Size is cut down by the server; the client copes (a short "
        "page never ends a pull early), but raise the plugin setting for fewer requests.",
        "PowerSchool's cloud OneRoster (Unified Classroom) issues tokens at "
        "https://accounts.powerschool.com/as/token.oauth2 with the credentials in the form body: set that "
        "token_url and token_auth: form.",
    ),
    sources=(
        "https://ps.powerschool-docs.com/pssis-admin/latest/view-oauth-client-credentials",
        "https://support.classlink.com/hc/en-us/articles/360007232513-PowerSchool-API-Activation",
        "https://docs.powerschool.com/UCHA/system-administration/integrations/oneroster",
    ),
    root_from_base_url=True,
)

SKYWARD = SisProfile(
    name="skyward",
    label="Skyward",
    token_url_template=None,
    base_url_templates={},
    token_auth="basic",
    default_page_size=1000,
    max_page_size=REGISTRY_MAX_PAGE_SIZE,
    default_concurrency=2,
    max_concurrency=REGISTRY_MAX_CONCURRENCY,
    credentials_from=(
        "Skyward: Product Setup → Skyward Contact Access → Security → Secured User → add the vendor as an "
        "Organization → API → Generate a New Secret: Key (client ID) and Secret"
    ),
    token_url_from="the OAuth2 token URL Skyward gives for its OneRoster API (no documented layout to derive)",
    base_url_from=(
        "the OneRoster API URL under Product Setup → Skyward Contact Access → District Setup → Configuration → "
        "API Configuration"
    ),
    page_size_note="no published maximum",
    concurrency_note="no published guidance; start low",
    quirks=(
        "The Skyward API Server must be installed before the OneRoster API URL answers.",
        "Skyward's OneRoster layout is not public: both URLs are explicit.",
    ),
    sources=(
        "https://help.otus.com/en/articles/4231146-skyward-api-configuration",
        "https://support.classlink.com/hc/en-us/articles/360007493713-Skyward-API-Activation",
    ),
)

AERIES = SisProfile(
    name="aeries",
    label="Aeries",
    token_url_template="{root}/token",
    base_url_templates={"v1p1": "{root}/ims/oneroster/v1p1"},
    token_auth="basic",
    default_page_size=1000,
    max_page_size=REGISTRY_MAX_PAGE_SIZE,
    default_concurrency=2,
    max_concurrency=REGISTRY_MAX_CONCURRENCY,
    credentials_from=(
        "Aeries: Security → API Security → the vendor's entry → Change → check OneRoster → Update → check "
        "Display Consumer ID & Secret Keys for OneRoster: Consumer ID and Consumer Secret Key"
    ),
    api_host_from=(
        "the Aeries URL: your Aeries sign-in page's address up to its last '/', e.g. https://district.aeries.net/aeries"
    ),
    token_url_from="the Aeries URL + /token",
    base_url_from="the Aeries URL + /ims/oneroster/v1p1",
    page_size_note="no published maximum; Aeries asks for paged, off-peak full syncs and dateLastModified deltas",
    concurrency_note="no published number; Aeries warns that heavy pulls slow Aeries for its users",
    quirks=(
        "Aeries serves OneRoster 1.1 only; a 1.2 base URL has to be given explicitly.",
        "Aeries's current documentation asks for OAuth2 scopes on the token request: copy them into the "
        "district's token_scope (space-separated); a token request refused with invalid_scope has that cause.",
        "Aeries behind a load balancer sets session cookies on the token response for later calls to carry; the "
        "client fetches tokens on a connection pool of its own, so they are not carried yet.",
        "Older Aeries releases issued tokens at the Aeries URL + /v2/oauth/token: set token_url if /token answers 404.",
    ),
    sources=(
        "https://support.aeries.com/support/solutions/articles/14000065657-oneroster-api-setup",
        "https://support.aeries.com/support/solutions/articles/14000065677-oneroster-api-authentication-process",
        "https://support.aeries.com/support/solutions/articles/14000065678-oneroster-api-data-sync-considerations",
    ),
    api_host_may_have_path=True,
    root_shown="AERIES_URL",
)

GENERIC = SisProfile(
    name="generic",
    label="generic OneRoster",
    token_url_template=None,
    base_url_templates={},
    token_auth="basic",
    default_page_size=1000,
    max_page_size=REGISTRY_MAX_PAGE_SIZE,
    default_concurrency=2,
    max_concurrency=REGISTRY_MAX_CONCURRENCY,
    credentials_from="the vendor's OneRoster API settings: client ID (key) and client secret",
    token_url_from="the OAuth2 token URL the vendor gives",
    base_url_from="the OneRoster base URL the vendor gives (ending in /ims/oneroster/v1p1, or …/rostering/v1p2)",
    page_size_note="the vendor's limit if it publishes one",
    concurrency_note="the vendor's guidance if it publishes any; start low",
    quirks=(
        "token_auth: form when the vendor wants client_id and client_secret in the token request's body.",
    ),
)

PROFILES: Mapping[str, SisProfile] = MappingProxyType(
    {p.name: p for p in (INFINITE_CAMPUS, CLASSLINK, POWERSCHOOL, SKYWARD, AERIES, GENERIC)}
)


def profile_for(sis: str) -> SisProfile:
    """The profile of a registry ``sis`` value; KeyError names the known ones."""
    try:
        return PROFILES[sis]
    except KeyError:
        raise KeyError(f"unknown sis {sis!r}; known: {', '.join(PROFILES)}") from None


def setup_table_markdown() -> str:
    """The per-SIS setup table of docs/configuration.md, rendered from the profiles (a test keeps them equal)."""
    rows = [
        "| `sis` | credentials (client_id_env / client_secret_env hold their variable names) | URL fields you copy "
        "| URLs derived | token auth | page_size default / max | max_concurrency default / max |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in PROFILES.values():
        copied = []
        if p.uses_api_host:
            copied.append(f"`api_host`: {p.api_host_from}")
        if p.uses_app_name:
            copied.append(f"`app_name`: {p.app_name_from}")
        if p.token_url_template is None:
            copied.append(f"`token_url`: {p.token_url_from}")
        if not p.base_url_templates:
            copied.append(f"`base_url`: {p.base_url_from}")
        elif len(p.base_url_templates) == 1:
            copied.append(f"`base_url` for OneRoster 1.2 only: the 1.2 base URL {p.label} gives")
        if p.token_url_template or p.base_url_templates:
            copied.append("an explicit `token_url` / `base_url` always wins")
        rows.append(
            f"| `{p.name}` | {p.credentials_from} | {'; '.join(copied)} | {p.layout_text()} | {p.token_auth} "
            f"| {p.default_page_size:,} / {p.max_page_size:,} ({p.page_size_note}) "
            f"| {p.default_concurrency} / {p.max_concurrency} ({p.concurrency_note}) |"
        )
    return "\n".join(rows)


def quirks_markdown() -> str:
    """The per-SIS quirks list of docs/configuration.md with the vendor pages each profile rests on (kept equal by a test)."""
    lines = []
    for p in PROFILES.values():
        lines.append(f"- **{p.label}** (`{p.name}`):")
        lines.extend(f"  - {quirk}" for quirk in p.quirks)
        if p.sources:
            lines.append("  - Vendor documentation: " + ", ".join(f"<{url}>" for url in p.sources))
    return "\n".join(lines)


__all__ = [
    "AERIES",
    "CLASSLINK",
    "GENERIC",
    "INFINITE_CAMPUS",
    "POWERSCHOOL",
    "PROFILES",
    "REGISTRY_MAX_CONCURRENCY",
    "REGISTRY_MAX_PAGE_SIZE",
    "SKYWARD",
    "ConnectionFields",
    "FieldProblem",
    "OneRosterVersion",
    "SisProfile",
    "needs_base_url",
    "needs_token_url",
    "oneroster_version",
    "origin_of",
    "profile_for",
    "quirks_markdown",
    "root_of",
    "setup_table_markdown",
]
