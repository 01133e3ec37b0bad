"""The releasegate.yaml schema as pydantic models.

Rules that need the whole file (promote_from targets, cycles, unique check
names) live in loader.py so they can point at the exact key.
"""

# No `from __future__ import annotations`: see values.py.
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from releasegate.config.schedules import (
    CronConfig,
    HealthCheckConfig,
    SqlCheckSpec,
    WindowsConfig,
)
from releasegate.config.values import (
    CommandName,
    CommandSpec,
    EnvName,
    EnvVarName,
    Host,
    HttpUrl,
    Label,
    Regex,
    RelPath,
    ResolvedPath,
    Runtime,
    StackName,
    StatePath,
    StrictModel,
    close_match,
    context_base_dir,
    did_you_mean,
    fail,
    local_hosts,
    unique,
)
from releasegate.errors import BadInput
from releasegate.flags.config import FlagsConfig

if TYPE_CHECKING:
    from releasegate.artifacts import Limits
from releasegate.execution.rollout import SHARE_PATTERN
from releasegate.notify.config import NotifyConfig
from releasegate.proxy.config import ProxyConfig
from releasegate.transport.base import DEFAULT_COMMAND_TIMEOUT_S
from releasegate.watch.config import WatchConfig


class StackCommands(StrictModel):
    install: CommandSpec | None = None
    migrate: CommandSpec | None = None
    restart: CommandSpec | None = None
    stop: CommandSpec | None = None


# ---- smoke checks ---------------------------------------------------------------


def default_check_name(item: dict[str, Any]) -> str:
    """`http:<path of url>` or `command:<first word>`, as used when `name` is not set."""
    url, command = item.get("http"), item.get("command")
    if isinstance(url, str):
        try:
            return "http:" + (urlsplit(url).path or "/")
        except ValueError:
            return "http:?"
    if isinstance(command, str) and command.split():
        return "command:" + command.split()[0]
    if isinstance(command, list) and command and isinstance(command[0], str):
        return "command:" + command[0]
    if isinstance(item.get("sql"), str):
        return f"sql:{item.get('source')}"
    return "check"


class SmokeCheck(StrictModel):
    """Fields shared by both kinds of check; `kind` says which one it is."""

    KIND: ClassVar[str] = ""

    name: Label
    retries: Annotated[int, Field(ge=0)] = 3  # extra attempts after the first
    interval: Annotated[float, Field(ge=0)] = 1.0  # seconds between attempts
    timeout: Annotated[float, Field(gt=0)] = 30.0  # seconds, overall budget for the check

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, value: Any) -> Any:
        if isinstance(value, dict) and "name" not in value:
            return {"name": default_check_name(value), **value}
        return value

    @property
    def kind(self) -> str:
        return self.KIND


class HttpCheck(SmokeCheck):
    KIND: ClassVar[str] = "http"

    http: HttpUrl
    expect_status: Annotated[int, Field(ge=100, le=599)] = 200
    body_contains: str | None = None  # raw: the caller substitutes {version}
    body_matches: Regex | None = None
    latency_ms: Annotated[int, Field(gt=0)] | None = None  # budget per request
    # bytes of the answer read and matched at most; the rest is never read (default 1 MiB)
    max_body_bytes: Annotated[int, Field(gt=0, le=256 * 1024 * 1024)] = 1024 * 1024


class CommandCheck(SmokeCheck):
    KIND: ClassVar[str] = "command"

    command: CommandSpec
    expect_output: str | None = None  # substring of stdout


class SqlCheck(SqlCheckSpec, SmokeCheck):
    """A read-only query on a backup source, its answer held to an expectation
    (releasegate.datachecks): seed 004's post-deploy data checks."""

    KIND: ClassVar[str] = "sql"
    retries: Annotated[int, Field(ge=0)] = 0  # a query's answer does not improve by waiting
    timeout: Annotated[float, Field(gt=0, le=600)] = 10.0  # the statement's time limit


RUN_KEYS = ("http", "command", "sql")


def _check_kind(value: Any) -> Any:
    if not isinstance(value, dict):
        fail("expected a mapping with `http: URL`, `command: ...` or `sql: QUERY`")
    if "http" in value and "command" in value:
        fail("has both 'http' and 'command': a check is one or the other; split it in two")
    if sum(k in value for k in RUN_KEYS) > 1:
        given = " and ".join(f"'{k}'" for k in RUN_KEYS if k in value)
        fail(f"has {given}: a check is one kind; split it")
    if not any(k in value for k in RUN_KEYS):
        hints = [f"'{m}' for '{k}'" for k in value if (m := close_match(k, RUN_KEYS))]
        suffix = f" (did you mean {', '.join(hints)}?)" if hints else ""
        fail("needs either 'http: URL' or 'command: ...'" + suffix)
    return value


# Tags name the branch in error locations; errors.py skips them when it maps a location to keys.
def _kind_tag(value: Any) -> str:
    if isinstance(value, dict):
        return next((k for k in ("http", "sql") if k in value), "command")
    return "command"


AnyCheck = Annotated[
    Annotated[HttpCheck, Tag("http")]
    | Annotated[CommandCheck, Tag("command")]
    | Annotated[SqlCheck, Tag("sql")],
    Discriminator(_kind_tag),
    BeforeValidator(_check_kind),
]


# ---- preflight, backup ----------------------------------------------------------


class PreflightCommand(StrictModel):
    name: Label
    run: CommandSpec
    expect_output: str | None = None


class PreflightConfig(StrictModel):
    disk_free_min_percent: Annotated[float, Field(ge=0, le=100)] = 20.0
    require_commands: Annotated[list[CommandName], AfterValidator(unique("command"))] = Field(
        default_factory=lambda: ["tar"]
    )
    commands: list[PreflightCommand] = Field(default_factory=list)


def unique_names(items: list[Any]) -> list[Any]:
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            fail(f"source name '{item.name}' is used twice")
        seen.add(item.name)
    return items


_EXPECT = r"^\s*(>=|<=|==|=|>|<|!=)\s*-?\d+\s*$"


class SanityCheckConfig(StrictModel):
    """Run on a restored copy: the query returns one number, compared with `expect`."""

    query: Annotated[str, Field(min_length=1)]
    expect: Annotated[str, Field(pattern=_EXPECT)] = ">0"


class BackupSourceConfig(StrictModel):
    """One thing to back up: a database (postgres, mysql, sqlite) or files (tar)."""

    name: Label
    kind: Literal["postgres", "mysql", "sqlite", "files"]
    database: str | None = None  # postgres, mysql
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    user: str | None = None
    password_env: EnvVarName | None = None  # read from the environment or the stack's .env
    container: Label | None = None  # run the dump inside this container (docker exec)
    path: str | None = None  # sqlite: the database file (relative to the stack's dir)
    paths: list[RelPath] = Field(default_factory=list)  # files: under the stack's dir
    checks: list[SanityCheckConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Self:
        needs = {"postgres": "database", "mysql": "database", "sqlite": "path", "files": "paths"}
        key = needs[self.kind]
        if not getattr(self, key):
            fail(f"{key}: required for kind {self.kind}")
        if self.kind == "files" and self.checks:
            fail("checks: only for databases")
        return self


class BackupConfig(StrictModel):
    files: list[RelPath] | None = None  # None: shared entries, or the compose files and .env
    sources: Annotated[list[BackupSourceConfig], AfterValidator(unique_names)] = Field(
        default_factory=list
    )
    keep_days: Annotated[int, Field(ge=1)] | None = None
    keep_last: Annotated[int, Field(ge=1)] | None = None
    # How writers are stopped for a restore; default: compose stacks `docker compose stop`,
    # releases stacks the `stop` command.
    stop: CommandSpec | None = None


# The seed's preflight gates on compose files (ids from releasegate.compose.lint).
COMPOSE_RULES = ("no-build", "no-latest", "untagged-image", "unresolved-variable", "invalid-image")
ComposeRule = Literal[
    "no-build", "no-latest", "untagged-image", "unresolved-variable", "invalid-image"
]
# The order docker compose looks them up in.
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")


class ComposeConfig(StrictModel):
    """runtime: compose. Paths are relative to the stack's `dir` (the run directory)."""

    project: StackName | None = None  # docker compose -p; default: the stack's name
    files: Annotated[list[RelPath], AfterValidator(unique("compose file"))] | None = None
    source: ResolvedPath | None = None  # what the team edits; `releasegate sync` copies it
    version_var: EnvVarName = "IMAGE_TAG"  # in <dir>/.env; images use ${IMAGE_TAG}
    version_service: Label | None = None  # whose image tag is the running version
    networks: Annotated[list[Label], AfterValidator(unique("network"))] = Field(
        default_factory=list
    )
    profiles: Annotated[list[Label], AfterValidator(unique("profile"))] = Field(
        default_factory=list
    )  # docker compose --profile: what this stack starts (and what its gates judge)
    health_url: HttpUrl | None = None  # shown by `releasegate stacks`
    wait_timeout: Annotated[float, Field(gt=0, le=3600)] = 120.0  # seconds for health
    # None: every rule for env `prod`, none elsewhere (the seed gates production).
    rules: Annotated[list[ComposeRule], AfterValidator(unique("rule"))] | None = None


# ---- fleets ----------------------------------------------------------------------

_SHARE = f"^{SHARE_PATTERN}$"
Share = Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=_SHARE)]  # 3 or "10%"


class FleetConfig(StrictModel):
    """How a deploy reaches a stack's hosts (see releasegate.execution.rollout)."""

    strategy: Literal["all", "rolling", "canary"] = "all"
    batch: Annotated[int, Field(ge=1)] | Annotated[str, Field(pattern=_SHARE)] = 1  # rolling
    canary: Annotated[int, Field(ge=1)] = 1  # canary: hosts in the first batch
    pause: Annotated[float, Field(ge=0, le=3600)] = 0.0  # seconds between batches
    # Hosts that may fail before the whole fleet goes back: 0 (default) or a share "10%".
    max_failures: Share = 0
    parallel: Annotated[int, Field(ge=1, le=1024)] = 32  # hosts worked on at once
    connect_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    # Seconds one of the team's commands (install, migrate, restart) may take on a host; a
    # command past it is killed with its process group, and the host counts as failed.
    command_timeout: Annotated[float, Field(gt=0, le=86400)] = DEFAULT_COMMAND_TIMEOUT_S


def unique_hosts(hosts: list[Host]) -> list[Host]:
    seen: set[str] = set()
    for host in hosts:
        if str(host) in seen:
            fail(f"host '{host}' is listed twice")
        seen.add(str(host))
    if len(hosts) > 1 and any(h.is_local for h in hosts):
        fail("'local' cannot be one host of several: list ssh:// hosts only")
    return hosts


# ---- migrations -------------------------------------------------------------------

MigrationTool = Literal["django", "alembic", "prisma", "sql"]
# The tool's entry when `command` is not set (run in `migrations.dir`).
DEFAULT_MIGRATION_COMMANDS: dict[str, tuple[str, ...]] = {
    "django": ("python", "manage.py"),
    "alembic": ("alembic",),
    "prisma": ("npx", "--no-install", "prisma"),
    "sql": (),
}
_SQL_IDENT = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


def _argv_only(value: CommandSpec | None) -> CommandSpec | None:
    if value is not None and value.is_shell:
        fail("must be an argv list (e.g. [python, manage.py]), not a shell string")
    return value


ArgvCommand = Annotated[CommandSpec, AfterValidator(_argv_only)]


class MigrationsConfig(StrictModel):
    """How a stack's schema changes: the tool, where it runs, which database it migrates.

    The tool reads the database from the environment variable `url_env` (a URL with the
    password), which releasegate sets for each run: the live database, or a scratch copy
    when rehearsing."""

    tool: MigrationTool
    database: Label  # a backup source of kind postgres, mysql or sqlite (connection, password_env)
    dir: ResolvedPath | None = None  # where the tool runs; default: the stack's dir
    command: ArgvCommand | None = None  # default per tool (DEFAULT_MIGRATION_COMMANDS)
    url_env: EnvVarName = "DATABASE_URL"
    # sqlite: also set this variable to the database file's path (e.g. DATABASE_PATH), for
    # settings that read a path rather than a URL
    path_env: EnvVarName | None = None
    path: RelPath | None = None  # sql: the folder of NNNN_name.sql; prisma: prisma/migrations
    history_table: Annotated[str, Field(pattern=_SQL_IDENT)] = "releasegate_schema_history"
    apps: Annotated[list[Label], AfterValidator(unique("app"))] = Field(default_factory=list)
    # rehearse: the previous release's smoke command, run against the migrated scratch copy
    previous_smoke: ArgvCommand | None = None
    timeout: Annotated[float, Field(gt=0)] = 3600.0  # seconds for one tool command

    @property
    def argv(self) -> list[str]:
        if self.command is not None:
            return self.command.argv()
        return list(DEFAULT_MIGRATION_COMMANDS[self.tool])

    @property
    def folder(self) -> str:
        return self.path or ("prisma/migrations" if self.tool == "prisma" else "migrations")


# ---- change approvals ---------------------------------------------------------------

RiskLevel = Literal["LOW", "MEDIUM", "HIGH"]


class ApprovalsConfig(StrictModel):
    """Who approved a change record, proven by an SSH signature (`ssh-keygen -Y sign`)
    checked against an OpenSSH allowed_signers file. At the top level for every change;
    under a stack for the changes that name it (or run on it), adding to the top level's."""

    allowed_signers: ResolvedPath | None = None  # principals and their public keys
    require_signed: bool = False  # every approval must be signed
    require_signed_for_risk: Annotated[list[RiskLevel], AfterValidator(unique("risk"))] = Field(
        default_factory=list
    )  # or only those of these risk levels

    @property
    def requires(self) -> bool:
        return self.require_signed or bool(self.require_signed_for_risk)


# ---- release artifacts ------------------------------------------------------------

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _byte_size(value: Any) -> Any:
    """`4GiB`, `512 MiB`, `1g` or a plain number of bytes."""
    import re

    if isinstance(value, str):
        found = re.fullmatch(r"\s*(\d{1,15})\s*([kmgtKMGT]?)(i?[bB])?\s*", value)
        if found is None:
            fail(f"'{value}' is not a size: use bytes or a unit, e.g. 512MiB or 4GiB")
        return int(found[1]) * _SIZE_UNITS[found[2].lower()]
    return value


ByteSize = Annotated[int, BeforeValidator(_byte_size), Field(ge=1)]


class ArtifactLimitsConfig(StrictModel):
    """How big a release artifact may get once unpacked (releasegate.artifacts.Limits):
    checked on the controller before anything is written."""

    max_bytes: ByteSize = 4 << 30  # file data, summed (4GiB)
    max_files: Annotated[int, Field(ge=1)] = 200_000  # entries of any kind
    # expanded / compressed size; judged once the expanded size passes 64 MiB
    max_ratio: Annotated[float, Field(ge=1)] = 200.0

    def limits(self) -> "Limits":
        from releasegate.artifacts import Limits

        return Limits(self.max_bytes, self.max_files, self.max_ratio)


# ---- stacks and the file ---------------------------------------------------------


class StackConfig(StrictModel):
    env: EnvName
    runtime: Runtime
    hosts: Annotated[list[Host], Field(min_length=1), AfterValidator(unique_hosts)] = Field(
        default_factory=local_hosts
    )
    dir: ResolvedPath
    artifacts: ResolvedPath | None  # required for runtime releases (see _runtime_keys)
    shared: Annotated[list[RelPath], AfterValidator(unique("shared path"))] = Field(
        default_factory=list
    )
    commands: StackCommands = Field(default_factory=StackCommands)
    env_vars: dict[EnvVarName, str] = Field(default_factory=dict)
    keep_releases: Annotated[int, Field(ge=2)] = 5
    artifact_limits: ArtifactLimitsConfig = Field(default_factory=ArtifactLimitsConfig)
    promote_from: StackName | None = None
    smoke: list[AnyCheck] = Field(default_factory=list)
    backup: BackupConfig = Field(default_factory=BackupConfig)
    preflight: PreflightConfig = Field(default_factory=PreflightConfig)
    compose: ComposeConfig | None = None
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    migrations: MigrationsConfig | None = None
    approvals: ApprovalsConfig | None = None  # change records naming (or run on) this stack
    windows: WindowsConfig | None = None  # when a deploy may start (gates.windows)
    cron: CronConfig | None = None  # scheduled jobs installed with each release (cron/)
    check: HealthCheckConfig = Field(default_factory=HealthCheckConfig)  # `releasegate check`
    notify: NotifyConfig | None = None  # Apprise URLs for this stack (besides the top level's)
    watch: WatchConfig | None = None  # the window after going live; a failing check rolls back
    flags: FlagsConfig | None = None  # feature switches (releasegate.flags)
    proxy: ProxyConfig | None = None  # blue/green slots behind a real proxy (releasegate.proxy)

    _name: str = PrivateAttr(default="")

    @model_validator(mode="before")
    @classmethod
    def _runtime_keys(cls, value: Any) -> Any:
        # `artifacts` is required (reported as a missing key) for releases only; a compose
        # stack's versions are image tags in a registry.
        # A swarm stack is a compose file too (`compose:` names it, its version variable,
        # its rules and wait_timeout); `compose.project` is the `docker stack` name.
        if isinstance(value, dict) and value.get("runtime") in ("compose", "swarm"):
            value = {"compose": {}, **value}
            value.setdefault("artifacts", None)
            preflight = value.get("preflight")
            if isinstance(preflight, dict) and "require_commands" not in preflight:
                value["preflight"] = {**preflight, "require_commands": ["docker"]}
            elif preflight is None:
                value["preflight"] = {"require_commands": ["docker"]}
        return value

    @model_validator(mode="after")
    def _runtime_consistent(self) -> Self:
        if self.runtime == "releases" and self.artifacts is None:
            fail("artifacts: required for runtime releases")
        if self.runtime == "releases" and "compose" in self.model_fields_set:
            fail("compose: only for runtime compose")
        databases = {s.name for s in self.backup.sources if s.kind != "files"}
        for check in self.smoke:  # a `sql` check reads a database source (datachecks)
            if isinstance(check, SqlCheck) and check.source not in databases:
                fail(
                    f"smoke check {check.name}: source '{check.source}' is not a database of "
                    f"backup.sources ({', '.join(sorted(databases)) or 'none is configured'})"
                )
        if self.runtime == "swarm" and len(self.hosts) > 1:
            fail("hosts: a swarm stack has one host, a Swarm manager (Swarm places the tasks)")
        if self.proxy is not None and self.runtime not in ("releases", "compose"):
            fail(f"proxy: slots are built for runtimes releases and compose, not {self.runtime}")
        if self.proxy is not None and self.fleet.strategy != "all":
            # Each host has its own proxy and every slot step acts on every host at once.
            fail(
                f"fleet.strategy: '{self.fleet.strategy}' batches are not built for slots "
                "behind a proxy: every host's proxy switches in one step (strategy: all)"
            )
        if self.proxy is not None and self.fleet.max_failures not in (0, "0", "0%"):
            fail(
                "fleet.max_failures: slots behind a proxy need every host to pass each step "
                "(the hosts' proxies stay alike); leave it 0"
            )
        if self.migrations is not None:
            kinds = {s.name: s.kind for s in self.backup.sources}
            kind = kinds.get(self.migrations.database)
            if kind not in ("postgres", "mysql", "sqlite"):
                known = [n for n, k in kinds.items() if k in ("postgres", "mysql", "sqlite")]
                fail(
                    f"migrations.database: '{self.migrations.database}' must name a backup "
                    "source of kind postgres, mysql or sqlite"
                    + (f" (sources: {', '.join(known)})" if known else " (none is configured)")
                )
        return self

    @property
    def on_ssh_hosts(self) -> bool:
        """Its hosts are reached over SSH (one or many): `dir` is a path on them."""
        return any(not h.is_local for h in self.hosts)

    @property
    def compose_files(self) -> list[str]:
        """The compose files relative to `dir`, as `docker compose -f` takes them."""
        if self.compose is not None and self.compose.files:
            return list(self.compose.files)
        if self.on_ssh_hosts:  # `dir` is on the hosts: what this machine has there says nothing
            return [COMPOSE_FILES[0]]
        found = [f for f in COMPOSE_FILES if (self.dir / f).is_file()]
        return found[:1] or [COMPOSE_FILES[0]]

    @property
    def compose_settings(self) -> ComposeConfig:
        """`compose:` as given, or its defaults (a compose stack may leave it out)."""
        return self.compose if self.compose is not None else ComposeConfig()

    @property
    def migration_settings(self) -> MigrationsConfig:
        """`migrations:`; only for stacks that have it (callers check `migrations` first)."""
        if self.migrations is None:
            raise BadInput(f"stack {self.name} has no migrations: section")
        return self.migrations

    @property
    def artifacts_dir(self) -> Path:
        """Where a releases stack's artifacts are (required for runtime releases)."""
        if self.artifacts is None:
            raise BadInput(f"stack {self.name} has no artifacts: folder")
        return Path(self.artifacts)

    @property
    def compose_project(self) -> str:
        return (self.compose.project if self.compose else None) or self.name

    @property
    def compose_rules(self) -> list[str]:
        if self.compose is not None and self.compose.rules is not None:
            return list(self.compose.rules)
        return list(COMPOSE_RULES) if self.env == "prod" else []

    @property
    def name(self) -> str:
        """The stack's key in the file."""
        return self._name

    @property
    def backup_files(self) -> list[str]:
        """Paths relative to `dir` to back up before a change."""
        if self.backup.files is not None:
            return list(self.backup.files)
        if self.runtime in ("compose", "swarm"):
            return [*self.compose_files, ".env"]
        return [f"shared/{entry}" for entry in self.shared]

    @field_validator("dir", "artifacts")
    @classmethod
    def _not_root(cls, value: Path | None) -> Path | None:
        if value is not None and value == Path(value.anchor):
            fail("must not be the file system root")
        return value


# Keys of `stacks.<name>` that cannot come from `defaults`.
STACK_ONLY_KEYS = ("env", "dir", "promote_from")


class AuditConfig(StrictModel):
    """Anchors of the ledger head outside the database (README: Audit anchors)."""

    # After every deploy and rollback: a file (replaced), or a folder (a new file each time).
    anchor: ResolvedPath | None = None
    # Sign each anchor with `ssh-keygen -Y sign` (a private key, or a public key in the agent).
    sign_key: ResolvedPath | None = None


ALLOWED_HOST = (
    r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$"
)


class WebConfig(StrictModel):
    """`releasegate serve` (the dashboard); its logic lives in releasegate.web."""

    # SSO: an authenticating reverse proxy names the user in this header. Accepted only from
    # `trusted_proxies` (peer addresses); the same header from any other peer is refused.
    trusted_header: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")] | None = None
    trusted_proxies: list[str] = Field(default_factory=list)
    # Session cookies marked Secure: on when the dashboard is reached over TLS (a proxy's).
    secure_cookies: bool = False
    session_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 12.0
    # A session unused this long ends (sessions live in the state database: web/sessions.py).
    session_idle_minutes: Annotated[float, Field(gt=0, le=24 * 30 * 60)] = 120.0
    # Host header names answered besides the bound address and localhost (DNS rebinding):
    # a proxy's public name (any port), NAME:PORT, or *.example.com.
    allowed_hosts: list[Annotated[str, Field(pattern=ALLOWED_HOST)]] = Field(default_factory=list)


class Config(StrictModel):
    # Accepted at the top level but consumed by the loader before validation.
    ALSO_ALLOWED: ClassVar[tuple[str, ...]] = ("defaults",)

    state_url: StatePath = Field(
        default=".releasegate/state.db", validation_alias="state", validate_default=True
    )
    records_dir: ResolvedPath = Field(default=Path(".releasegate/records"), validate_default=True)
    backups_dir: ResolvedPath = Field(default=Path(".releasegate/backups"), validate_default=True)
    stacks: Annotated[dict[StackName, StackConfig], Field(min_length=1)]
    approvals: ApprovalsConfig = Field(default_factory=ApprovalsConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    notify: NotifyConfig | None = None  # Apprise URLs for every stack
    web: WebConfig = Field(default_factory=WebConfig)
    # Seconds a stack lock's holder may stay silent (no heartbeat) before a run on another
    # host takes its lock over (locks.py); it beats every third of it.
    lock_lease: float = Field(default=30.0, ge=1.0, le=3600.0)

    _path: Path = PrivateAttr(default=Path("releasegate.yaml"))

    @model_validator(mode="after")
    def _signers_known(self) -> Self:
        # A requirement that no file could ever satisfy is a mistake to report now.
        if self.approvals.requires and self.approvals.allowed_signers is None:
            fail("approvals: signatures are required but allowed_signers is not set")
        for key, stack in self.stacks.items():
            own = stack.approvals
            if (
                own is not None
                and own.requires
                and not (own.allowed_signers or self.approvals.allowed_signers)
            ):
                fail(
                    f"stacks.{key}.approvals: signatures are required but no allowed_signers "
                    "file is named (here or in the top-level approvals)"
                )
        return self

    @model_validator(mode="after")
    def _finish(self, info: ValidationInfo) -> Self:
        self._path = context_base_dir(info) / "releasegate.yaml"
        if isinstance(info.context, dict) and isinstance(info.context.get("path"), Path):
            self._path = info.context["path"]
        for key, stack in self.stacks.items():
            stack._name = key
        return self

    @property
    def path(self) -> Path:
        """Absolute path of the file this was loaded from."""
        return self._path

    @property
    def base_dir(self) -> Path:
        """The file's directory: relative paths in the file start here."""
        return self._path.parent

    def stack(self, name: str) -> StackConfig:
        try:
            return self.stacks[name]
        except KeyError:
            known = list(self.stacks)
            raise BadInput(
                f"unknown stack '{name}'{did_you_mean(name, known)}",
                hint=f"stacks in {self.path}: {', '.join(known)}",
            ) from None

    def stacks_promoting_from(self, name: str) -> list[StackConfig]:
        """Stacks whose `promote_from` is `name`, in file order."""
        return [s for s in self.stacks.values() if s.promote_from == name]
