"""The releasegate.yaml schema as pydantic models.

Rules that need the whole file (promote_from targets, cycles, unique check
names) live in loader.py so they can point at the exact key.
"""

# No `from __future__ import annotations`: see values.py.
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self
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


class CommandCheck(SmokeCheck):
    KIND: ClassVar[str] = "command"

    command: CommandSpec
    expect_output: str | None = None  # substring of stdout


RUN_KEYS = ("http", "command")


def _check_kind(value: Any) -> Any:
    if not isinstance(value, dict):
        fail("expected a mapping with `http: URL` or `command: ...`")
    if "http" in value and "command" in value:
        fail("has both 'http' and 'command': a check is one or the other; split it in two")
    if "http" not in value and "command" not in value:
        hints = [f"'{m}' for '{k}'" for k in value if (m := close_match(k, RUN_KEYS))]
        suffix = f" (did you mean {', '.join(hints)}?)" if hints else ""
        fail("needs either 'http: URL' or 'command: ...'" + suffix)
    return value


# Tags name the branch in error locations; errors.py skips them when it maps a location to keys.
AnyCheck = Annotated[
    Annotated[HttpCheck, Tag("http")] | Annotated[CommandCheck, Tag("command")],
    Discriminator(lambda v: "http" if isinstance(v, dict) and "http" in v else "command"),
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


class BackupConfig(StrictModel):
    files: list[RelPath] | None = None  # None: back up the stack's shared entries


# ---- stacks and the file ---------------------------------------------------------


class StackConfig(StrictModel):
    env: EnvName
    runtime: Runtime
    hosts: Annotated[list[Host], Field(min_length=1), AfterValidator(unique("host"))] = Field(
        default_factory=local_hosts
    )
    dir: ResolvedPath
    artifacts: ResolvedPath
    shared: Annotated[list[RelPath], AfterValidator(unique("shared path"))] = Field(
        default_factory=list
    )
    commands: StackCommands = Field(default_factory=StackCommands)
    env_vars: dict[EnvVarName, str] = Field(default_factory=dict)
    keep_releases: Annotated[int, Field(ge=2)] = 5
    promote_from: StackName | None = None
    smoke: list[AnyCheck] = Field(default_factory=list)
    backup: BackupConfig = Field(default_factory=BackupConfig)
    preflight: PreflightConfig = Field(default_factory=PreflightConfig)

    _name: str = PrivateAttr(default="")

    @property
    def name(self) -> str:
        """The stack's key in the file."""
        return self._name

    @property
    def backup_files(self) -> list[str]:
        """Paths relative to `dir` to back up before a change."""
        if self.backup.files is not None:
            return list(self.backup.files)
        return [f"shared/{entry}" for entry in self.shared]

    @field_validator("dir", "artifacts")
    @classmethod
    def _not_root(cls, value: Path) -> Path:
        if value == Path(value.anchor):
            fail("must not be the file system root")
        return value


# Keys of `stacks.<name>` that cannot come from `defaults`.
STACK_ONLY_KEYS = ("env", "dir", "promote_from")


class Config(StrictModel):
    # Accepted at the top level but consumed by the loader before validation.
    ALSO_ALLOWED: ClassVar[tuple[str, ...]] = ("defaults",)

    state_url: StatePath = Field(
        default=".releasegate/state.db", validation_alias="state", validate_default=True
    )
    records_dir: ResolvedPath = Field(default=Path(".releasegate/records"), validate_default=True)
    backups_dir: ResolvedPath = Field(default=Path(".releasegate/backups"), validate_default=True)
    stacks: Annotated[dict[StackName, StackConfig], Field(min_length=1)]

    _path: Path = PrivateAttr(default=Path("releasegate.yaml"))

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
