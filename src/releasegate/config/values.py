"""Validated single values of releasegate.yaml: names, paths, URLs, commands, hosts.

Validators raise PydanticCustomError with a finished sentence (`fail`);
errors.py adds file:line and the key path.
"""

# No `from __future__ import annotations` in this package's model modules:
# pydantic would have to eval every annotation string when building models.
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    Strict,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from releasegate import names
from releasegate.errors import BadInput
from releasegate.redact import mask_url

# Patterns are plain strings: `re` compiles and caches them on first use, so
# importing this module compiles nothing.
_ENV_VAR = r"[A-Z_][A-Z0-9_]*"
_COMMAND_NAME = r"[A-Za-z0-9._+][A-Za-z0-9._+-]*"
_SSH_URL = r"ssh://(?:(?P<user>[^@/]*)@)?(?P<host>\[[^\]]*\]|[^:/]*)(?::(?P<port>[^/]*))?"
_SSH_USER = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}"
_HOSTNAME = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
_IPV6 = r"[0-9A-Fa-f:.]{2,45}"

RUNTIMES = ("releases", "compose", "swarm")
PLANNED_RUNTIMES: tuple[str, ...] = ()


def fail(message: str) -> NoReturn:
    # The message goes through a context value so braces in it ("{version}") survive.
    raise PydanticCustomError("releasegate", "{reason}", {"reason": message})


def close_match(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    from difflib import get_close_matches  # only on the error path: keeps imports light

    found = get_close_matches(word, choices, n=1)
    return found[0] if found else None


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = close_match(word, choices)
    return f" (did you mean '{close}'?)" if close else ""


class StrictModel(BaseModel):
    # strict: YAML already gives real types; "5" for a number is a mistake to report.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ---- simple values --------------------------------------------------------------


def _name_of(kind: str) -> Any:
    def check(value: str) -> str:
        try:
            return names.check(kind, value)
        except BadInput as exc:
            fail(exc.message)

    return check


StackName = Annotated[str, AfterValidator(_name_of("stack"))]
EnvName = Annotated[str, AfterValidator(_name_of("env"))]


def _env_var(value: str) -> str:
    if not re.fullmatch(_ENV_VAR, value):
        fail(f"environment variable name '{value}' is not allowed: use A-Z, 0-9 and '_'")
    return value


def _command_name(value: str) -> str:
    if not re.fullmatch(_COMMAND_NAME, value):
        fail(f"'{value}' is not a plain command name (letters, digits, '.', '_', '+', '-')")
    return value


def _label(value: str) -> str:
    if not value.strip():
        fail("must not be empty")
    if len(value) > 100 or any(not c.isprintable() for c in value):
        fail("must be one printable line of at most 100 characters")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        fail(f"not a valid regular expression: {exc.msg} at position {exc.pos}")
    return value  # kept as written: the caller compiles it when it runs the check


def _http_url(value: str) -> str:
    shown = mask_url(value)  # an error message must not show the URL's password
    if any(c.isspace() for c in value):
        fail(f"URL {shown!r} contains a space")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        fail(f"URL {shown!r} must start with http:// or https://")
    if not parts.hostname:
        fail(f"URL {shown!r} has no host")
    try:
        parts.port  # noqa: B018 - evaluated for the ValueError on a bad port
    except ValueError:
        fail(f"URL {shown!r} has an invalid port")
    return value


def _runtime(value: Any) -> Any:
    if isinstance(value, str) and value not in RUNTIMES:
        if value in PLANNED_RUNTIMES:
            fail(f"runtime '{value}' is not available in this version")
        fail(
            f"unknown runtime '{value}'{did_you_mean(value, RUNTIMES)}"
            f" (available: {', '.join(RUNTIMES)})"
        )
    return value


def _nonempty_path(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        fail("must not be empty")
    if isinstance(value, str) and "\0" in value:
        fail("must not contain a NUL character")
    return value


def context_base_dir(info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base_dir")
    return base if isinstance(base, Path) else Path.cwd()


def _resolve(value: Path, info: ValidationInfo) -> Path:
    try:
        value = value.expanduser()
    except RuntimeError:  # "~someone" with no such user
        fail(f"cannot expand '{value}': unknown user")
    # normpath, not resolve(): keep symlinks as the user wrote them, just make it absolute.
    return Path(os.path.normpath(context_base_dir(info) / value))


def _state_path(value: str, info: ValidationInfo) -> str:
    if "://" in value:
        from releasegate.ledger.url import password_problem

        if problem := password_problem(value):  # a secret in a committed file
            fail(problem)
        return value  # a SQLAlchemy URL, used as given
    if not value.strip():
        fail("must not be empty")
    return str(_resolve(Path(value), info))


def _relative(value: str) -> str:
    """A path under the stack's dir: no absolute paths, no '..', normalised."""
    if not value.strip():
        fail("must not be empty")
    if value.startswith(("/", "~")):
        fail(f"'{value}' must be relative to the stack's dir (no leading '/' or '~')")
    if "\\" in value or "\0" in value:
        fail(f"'{value}' must use '/' and no special characters")
    parts = value.rstrip("/").split("/")
    if ".." in parts:
        fail(f"'{value}' must not contain '..'")
    kept = [p for p in parts if p != "."]
    if not kept:
        fail(f"'{value}' names the folder itself; name a file or folder inside it")
    if "" in kept:
        fail(f"'{value}' has an empty part ('//')")
    return "/".join(kept) + ("/" if value.endswith("/") else "")


EnvVarName = Annotated[str, AfterValidator(_env_var)]
CommandName = Annotated[str, AfterValidator(_command_name)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Regex = Annotated[str, AfterValidator(_regex)]
StatePath = Annotated[str, AfterValidator(_state_path)]
Runtime = Annotated[Literal["releases", "compose", "swarm"], BeforeValidator(_runtime)]
# A path relative to the config file, made absolute; Strict(False) takes the YAML string.
ResolvedPath = Annotated[
    Path, BeforeValidator(_nonempty_path), Strict(False), AfterValidator(_resolve)
]
RelPath = Annotated[str, AfterValidator(_relative)]
Label = Annotated[str, AfterValidator(_label)]


def unique(kind: str) -> Any:
    def check(values: list[Any]) -> list[Any]:
        seen: set[Any] = set()
        for value in values:
            if value in seen:
                fail(f"{kind} '{value}' is listed twice")
            seen.add(value)
        return values

    return check


# ---- commands -------------------------------------------------------------------


class CommandSpec:
    """A command as written: a string (run through a shell) or an argv list."""

    __slots__ = ("value",)

    def __init__(self, value: str | list[str] | tuple[str, ...]) -> None:
        self.value: str | tuple[str, ...] = value if isinstance(value, str) else tuple(value)

    @property
    def is_shell(self) -> bool:
        return isinstance(self.value, str)

    def argv(self, shell: str = "sh") -> list[str]:
        if isinstance(self.value, str):
            return [shell, "-c", self.value]
        return list(self.value)

    def __str__(self) -> str:
        return self.value if isinstance(self.value, str) else " ".join(self.value)

    def __repr__(self) -> str:
        return f"CommandSpec({self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CommandSpec) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    @classmethod
    def parse(cls, value: Any) -> "CommandSpec":
        if isinstance(value, CommandSpec):
            return value
        if isinstance(value, str):
            if not value.strip():
                fail("command must not be empty")
            return cls(value)
        if isinstance(value, list | tuple):
            if not value:
                fail("command list must not be empty")
            for index, item in enumerate(value):
                if not isinstance(item, str) or not item:
                    shown = str(item).lower() if isinstance(item, bool) else repr(item)
                    fail(f"argv[{index}] must be a non-empty string, got {shown}; quote it")
            return cls(value)
        fail("expected a command: a string (run by sh -c) or a list of strings (argv)")

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # One plain validator instead of `str | list[str]`: a union would report
        # every failed branch separately.
        return core_schema.no_info_plain_validator_function(
            cls.parse,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda spec: spec.value if isinstance(spec.value, str) else list(spec.value)
            ),
        )


# ---- hosts ----------------------------------------------------------------------


def _check_user(user: str) -> str:
    if not re.fullmatch(_SSH_USER, user):
        fail(f"ssh user '{user}' is not allowed: use letters, digits, '.', '_' and '-'")
    return user


def _check_address(address: str) -> str:
    if not (re.fullmatch(_HOSTNAME, address) or (":" in address and re.fullmatch(_IPV6, address))):
        fail(f"host '{address}' is not a valid host name or IP address")
    return address


def _check_port(port: int) -> int:
    if not 1 <= port <= 65535:
        fail(f"port {port} is out of range (1-65535)")
    return port


def parse_host(text: str) -> dict[str, Any]:
    if text == "local":
        return {"kind": "local"}
    match = re.fullmatch(_SSH_URL, text)
    if not match:
        fail(f"host {text!r} must be 'local' or 'ssh://[user@]host[:port]'")
    user, host, port = match["user"], match["host"], match["port"]
    if user == "":
        fail(f"host {text!r} has an empty user: drop the '@', or name the user")
    if not host or host == "[]":
        fail(f"host {text!r} has no host name")
    if port is not None and not (port.isdigit() and len(port) <= 5):
        fail(f"host {text!r} has an invalid port {port!r}")
    address = host[1:-1] if host.startswith("[") else host
    # No user or port: ~/.ssh/config's User and Port for that host, else (as ssh does) the
    # local user name and 22.
    return {
        "kind": "ssh",
        "user": _check_user(user) if user else None,
        "address": _check_address(address),
        "port": _check_port(int(port)) if port else None,
    }


class Host(StrictModel):
    """Where a stack runs: `local`, or `ssh://[user@]address[:port]` (user and port not
    given: from ~/.ssh/config, else the local user name and 22), or `{host: ssh://...,
    roles: [web, migrate]}` to give it roles."""

    kind: Literal["local", "ssh"]
    user: Annotated[str, AfterValidator(_check_user)] | None = None
    address: Annotated[str, AfterValidator(_check_address)] | None = None
    port: Annotated[int, AfterValidator(_check_port)] | None = None
    roles: tuple[Label, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_host(value)
        if isinstance(value, dict) and "host" in value:
            extra = sorted(set(value) - {"host", "roles"})
            if extra:
                fail(f"unknown key '{extra[0]}' in a host: a host takes 'host' and 'roles'")
            if not isinstance(value["host"], str):
                fail("host: expected 'ssh://[user@]host[:port]'")
            roles = value.get("roles", [])
            if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                fail("roles: expected a list of names, e.g. [web, migrate]")
            if len(set(roles)) != len(roles):
                fail("roles: a role is listed twice")
            return {**parse_host(value["host"]), "roles": tuple(roles)}
        if isinstance(value, dict | Host):
            return value  # direct construction in code
        fail("expected 'local', 'ssh://[user@]host[:port]' or {host: ..., roles: [...]}")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind == "ssh" and not self.address:
            fail("an ssh host needs an address")
        if self.kind == "local" and (self.user or self.address or self.port):
            fail("a local host takes no user, address or port")
        return self

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    @property
    def label(self) -> str:
        """How output names the host: its address, with the port when it is not 22."""
        if self.kind == "local" or not self.address:
            return "local"
        address = f"[{self.address}]" if ":" in self.address else self.address
        return address if self.port in (None, 22) else f"{address}:{self.port}"

    def __str__(self) -> str:
        if self.kind == "local":
            return "local"
        address = f"[{self.address}]" if self.address and ":" in self.address else self.address
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{address}{port}"


def local_hosts() -> list[Host]:
    return [Host(kind="local")]
