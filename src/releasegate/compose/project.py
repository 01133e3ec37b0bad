"""Load a docker compose project the way `docker compose config` does, without Docker.

Several `-f` files merge in order; `include:` pulls in other projects, `extends:` other
services (in the same file or another one, recursively); YAML anchors and merge keys,
`!reset` and `!override`, profiles and `${VAR}` interpolation (from the environment, then
the project's `.env`) all behave as in compose. What the rules need of each service (its
image after interpolation, whether it builds, its profiles) keeps the file and line where
it was written, through all of that.

Pure apart from reading files: no subprocess, no printing. Every problem is a `BadInput`
naming the file and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from releasegate.errors import BadInput

# In docker compose's order of preference (compose-go's DefaultFileNames).
COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILE_NAMES = (
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
)

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STANDARD_TAG = "tag:yaml.org,2002:"
_ESCAPE_HINT = "write $$ for a literal $"


# -- the model ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Position:
    file: str
    line: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Service:
    """One service after merging, extends and include; positions say where each part was
    written (an image inherited through `<<: *anchor` or `extends` points at the anchor or
    the base service)."""

    name: str
    position: Position  # where `name:` was first written
    image: str | None  # after interpolation
    image_source: str | None  # as written, before interpolation
    image_position: Position | None
    unresolved: tuple[str, ...]  # unset variables without a default that the image used
    build: bool
    build_context: str | None
    build_position: Position | None
    profiles: tuple[str, ...]
    active: bool  # started with the project's profiles (always true without `profiles:`)


@dataclass(frozen=True)
class UnsetVariable:
    """`$NAME` or `${NAME}` with NAME unset and no default: compose uses an empty string."""

    name: str
    position: Position


@dataclass(frozen=True)
class ComposeProject:
    files: tuple[Path, ...]  # the files given, in merge order
    project_dir: Path
    services: tuple[Service, ...]  # all of them, profiles or not, in the order written
    profiles: tuple[str, ...]  # the profiles enabled when loading
    unset_variables: tuple[UnsetVariable, ...]
    sources: tuple[Path, ...]  # every file read: compose files, includes, extends, env files

    @property
    def selected(self) -> tuple[Service, ...]:
        """The services to judge: all of them when no profile was given (a profile may be
        enabled on the server), else those the profiles start."""
        if not self.profiles:
            return self.services
        return tuple(s for s in self.services if s.active)

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)


# -- interpolation --------------------------------------------------------------------------
# compose-go's template pattern (v2, as `docker compose` 2.40 runs it): `$$`, `$NAME`, or
# `${NAME}` / `${NAME<op>...}`; `${` followed by anything else is invalid. A `$` that starts
# none of these (`$2a$14$...` in a bcrypt hash, `5$`) is kept as it is. `.*` is greedy and
# stops at a line end, as Go's `.` does.
_TEMPLATE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)"
    r"|\{(?:(?P<braced>[_a-z][_a-z0-9]*(?::?[-+?].*)?)\}|(?P<invalid>)))",
    re.IGNORECASE | re.ASCII,
)
_OPERATORS = (":?", "?", ":-", "-", ":+", "+")


class TemplateError(ValueError):
    """A `${` that is not a valid substitution (compose refuses the file)."""


class RequiredVariable(TemplateError):
    """`${NAME:?message}` or `${NAME?message}` with NAME missing."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(
            f"required variable {name} is missing a value" + (f": {message}" if message else "")
        )
        self.name = name
        self.message = message


@dataclass(frozen=True)
class Interpolated:
    value: str
    unset: tuple[str, ...]  # variables used that were unset and had no default


def interpolate(text: str, lookup: Callable[[str], str | None]) -> Interpolated:
    """Substitute variables as compose does: `$VAR`, `${VAR}`, `${VAR:-default}`,
    `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`, nested
    (`${A:-${B:-x}}`), `$$` for a literal `$`, and a `$` that starts no variable kept as it
    is. `lookup` returns None for unset names. Raises TemplateError (RequiredVariable for a
    failed `?`)."""
    unset: list[str] = []
    value = _substitute(text, lookup, unset)
    return Interpolated(value, tuple(dict.fromkeys(unset)))


def _substitute(text: str, lookup: Callable[[str], str | None], unset: list[str]) -> str:
    return _TEMPLATE.sub(lambda m: _replace(m.group(), lookup, unset), text)


def _replace(found: str, lookup: Callable[[str], str | None], unset: list[str]) -> str:
    """One match of _TEMPLATE, as compose-go's DefaultReplacementFunc handles it: the match
    (which runs to the last `}` of the line) is cut after its first balanced `}`, and what
    follows is substituted on its own."""
    end = _closing_brace(found)
    head, rest = (found, "") if end < 0 else (found[: end + 1], found[end + 1 :])
    match = _TEMPLATE.match(head)
    if match is None or match.group("invalid") is not None:
        raise TemplateError(f"invalid interpolation format in {found!r}")
    if match.group("escaped"):
        return "$"
    name = match.group("named") or match.group("braced")
    operator = _operator(found)
    if match.group("braced") and operator is not None and operator in name:
        return _braced(name, operator, lookup, unset) + _substitute(rest, lookup, unset)
    value = lookup(name)
    if value is None:
        unset.append(name)
    return value or ""


def _operator(found: str) -> str | None:
    """The operator compose applies: the one written first in the match."""
    at = {op: found.find(op) for op in _OPERATORS}
    present = [op for op in _OPERATORS if at[op] >= 0]
    return min(present, key=lambda op: at[op]) if present else None


def _closing_brace(text: str) -> int:
    """Index of the first balanced `}` (compose-go's getFirstBraceClosingIndex: every `{`
    opens, and the character after it is skipped), or -1."""
    depth = 0
    i = 0
    while i < len(text):
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        if text[i] == "{":
            depth += 1
            i += 1
        i += 1
    return -1


def _braced(body: str, operator: str, lookup: Callable[[str], str | None], unset: list[str]) -> str:
    name, argument_text = body.split(operator, 1)
    # Compose substitutes the argument before looking at the variable: its errors count
    # even when it is not used, its unset variables only when it is.
    inner: list[str] = []
    argument = _substitute(argument_text, lookup, inner)
    value = lookup(name)
    strict = operator.startswith(":")  # an empty value counts as missing
    missing = value is None or (strict and value == "")
    if operator in (":-", "-"):
        if missing:
            unset.extend(inner)
            return argument
        return value or ""
    if operator in (":?", "?"):
        if missing:
            raise RequiredVariable(name, argument)
        return value or ""
    if not missing:  # :+ and +
        unset.extend(inner)
        return argument
    return value or ""


# -- .env files -----------------------------------------------------------------------------
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$$"}


def parse_dotenv(
    text: str, filename: str, lookup: Callable[[str], str | None] | None = None
) -> dict[str, str]:
    """Read a compose `.env` file: `KEY=value`, `export KEY=value`, `# comments`, quotes
    (single: literal; double: escapes and variables), variables in unquoted values, and a
    bare `KEY` taking its value from `lookup` (the environment)."""
    out: dict[str, str] = {}

    def find(name: str) -> str | None:
        value = lookup(name) if lookup else None
        return value if value is not None else out.get(name)

    lines = text.split("\n")
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].rstrip("\r").strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        match = _ENV_KEY.match(line)
        if not match:
            raise BadInput(
                f"{filename}:{number}: expected KEY=value, found {line[:40]!r}",
                hint="one KEY=value per line; # starts a comment",
            )
        key, rest = match.group(), line[match.end() :].lstrip()
        if not rest or rest.startswith("#"):  # a bare KEY: from the environment, if set
            value = lookup(key) if lookup else None
            if value is not None:
                out[key] = value
            continue
        if not rest.startswith("="):
            raise BadInput(
                f"{filename}:{number}: expected '=' after {key}",
                hint="one KEY=value per line; # starts a comment",
            )
        rest = rest[1:].lstrip()
        quote = rest[:1]
        if quote in ("'", '"'):
            body = rest[1:]
            end = _closing_quote(body, quote)
            while end < 0 and index < len(lines):  # a quoted value may span lines
                body += "\n" + lines[index].rstrip("\r")
                index += 1
                end = _closing_quote(body, quote)
            if end < 0:
                raise BadInput(f"{filename}:{number}: {key}: the {quote} quote is never closed")
            raw = body[:end]
            if quote == "'":
                out[key] = raw
                continue
            raw = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), raw)
        else:
            raw = re.split(r"\s#", rest, maxsplit=1)[0].strip()
        try:
            out[key] = interpolate(raw, find).value
        except TemplateError as exc:
            raise BadInput(f"{filename}:{number}: {key}: {exc}", hint=_ESCAPE_HINT) from None
    return out


def _closing_quote(text: str, quote: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\" and quote == '"':
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return -1


# -- finding the files ----------------------------------------------------------------------
def find_compose_files(directory: Path) -> list[Path]:
    """What `docker compose` reads without `-f`: the first of COMPOSE_FILE_NAMES in
    `directory` or its nearest parent that has one, plus that folder's override file."""
    for folder in (directory, *directory.parents):
        main = next((folder / n for n in COMPOSE_FILE_NAMES if (folder / n).is_file()), None)
        if main is None:
            continue
        override = next((folder / n for n in OVERRIDE_FILE_NAMES if (folder / n).is_file()), None)
        return [main] if override is None else [main, override]
    return []


# -- loading --------------------------------------------------------------------------------
def load_project(
    files: Sequence[Path],
    *,
    env: Mapping[str, str] | None = None,
    profiles: Sequence[str] = (),
    project_dir: Path | None = None,
    env_files: Sequence[Path] | None = None,
) -> ComposeProject:
    """Load `files` (merged in order, like `docker compose -f A -f B`).

    Variables come from `env` (default: the process environment), then from `env_files`
    (default: `.env` in the project directory, if there is one); `env` wins. The project
    directory defaults to the first file's folder. Raises BadInput naming file and line.
    """
    if not files:
        raise BadInput("no compose file to load", hint="name one, e.g. docker-compose.yml")
    paths = tuple(Path(f) for f in files)
    directory = Path(project_dir) if project_dir is not None else paths[0].parent
    load = _Load()
    if env_files is None:
        dotenv = directory / ".env"
        env_files = [dotenv] if dotenv.is_file() else []
    environment = load.environment(dict(os.environ if env is None else env), env_files, None)
    defs = load.project(paths, environment, directory, ())
    enabled = tuple(dict.fromkeys([profiles] if isinstance(profiles, str) else profiles))
    return ComposeProject(
        files=paths,
        project_dir=directory,
        services=tuple(_service(name, d, enabled) for name, d in defs.items()),
        profiles=enabled,
        unset_variables=tuple(load.unset.values()),
        sources=tuple(load.sources),
    )


class _Map(dict[str, Any]):
    """A YAML mapping that remembers, per key, where it was written."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, _Meta] = {}


class _Seq(list[Any]):
    def __init__(self) -> None:
        super().__init__()
        self.positions: list[Position] = []


@dataclass(frozen=True)
class _Meta:
    position: Position  # of the key
    source: str | None = None  # the scalar value as written, when it had variables
    unset: tuple[str, ...] = ()


class _Reset:
    """`!reset`: the key is removed from what is merged into."""


_RESET = _Reset()


@dataclass(frozen=True)
class _Override:
    """`!override`: the value replaces what it is merged into instead of merging."""

    value: Any


@dataclass(frozen=True)
class _Def:
    data: _Map
    position: Position


class _Reader:
    """Compose one file's YAML into _Map/_Seq/scalars, interpolating every string value."""

    def __init__(
        self,
        filename: str,
        lookup: Callable[[str], str | None],
        unset: dict[tuple[str, str, int], UnsetVariable],
    ) -> None:
        self.filename = filename
        self.lookup = lookup
        self.unset = unset
        self.constructor = SafeConstructor()
        self.active: set[int] = set()  # nodes on the current branch, against recursive aliases

    def at(self, node: Node) -> Position:
        return Position(self.filename, node.start_mark.line + 1)

    def documents(self, text: str) -> list[tuple[Any, Position]]:
        try:
            nodes = list(yaml.compose_all(text, Loader=_Loader))
            return [(self.build(node), self.at(node)) for node in nodes if node is not None]
        except RecursionError:
            raise BadInput(f"{self.filename}: nested too deeply") from None
        except yaml.MarkedYAMLError as exc:
            raise _syntax_error(exc, self.filename) from None
        except yaml.YAMLError as exc:
            raise BadInput(f"{self.filename}: not valid YAML: {exc}") from None

    def build(self, node: Node) -> Any:
        if node.tag == "!reset":
            return _RESET
        if node.tag == "!override":
            return _Override(self.plain(node))
        return self.plain(node)

    def plain(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            return self.scalar(node)[0]
        if id(node) in self.active:
            raise BadInput(f"{self.at(node)}: an alias refers to itself")
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node)
            seq = _Seq()
            for item in node.value:
                seq.positions.append(self.at(item))
                seq.append(self.build(item))
            return seq
        finally:
            self.active.discard(id(node))

    def scalar(self, node: ScalarNode) -> tuple[Any, str | None, tuple[str, ...]]:
        value: Any = node.value
        if node.tag.startswith(_STANDARD_TAG):
            try:
                value = self.constructor.construct_object(node)
            except (ConstructorError, ValueError):
                value = node.value
        if not isinstance(value, str) or "$" not in value:
            return value, None, ()
        position = self.at(node)
        try:
            result = interpolate(value, self.lookup)
        except RequiredVariable as exc:
            raise BadInput(
                f"{position}: {exc}",
                hint=f"set {exc.name} in the environment or the .env file",
            ) from None
        except TemplateError as exc:
            raise BadInput(f"{position}: invalid interpolation: {exc}", hint=_ESCAPE_HINT) from None
        for name in result.unset:
            self.unset.setdefault(
                (name, position.file, position.line), UnsetVariable(name, position)
            )
        return result.value, value, result.unset

    def mapping(self, node: MappingNode) -> _Map:
        result = _Map()
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            position = self.at(key_node)
            if not isinstance(key_node, ScalarNode):
                raise BadInput(f"{position}: a key must be plain text")
            key = key_node.value  # as written: YAML 1.1 would read `on:` as True
            if key in result.meta:
                first = result.meta[key].position.line
                raise BadInput(f"{position}: duplicate key '{key}' (first at line {first})")
            if isinstance(value_node, ScalarNode) and not value_node.tag.startswith("!"):
                value, source, unset = self.scalar(value_node)
                result.meta[key] = _Meta(position, source, unset)
            else:
                value = self.build(value_node)
                result.meta[key] = _Meta(position)
            result[key] = value
        # `<<: *a` or `<<: [*a, *b]`: keys written here win, then the first merged mapping.
        for merged in merges:
            parts: list[Node] = merged.value if isinstance(merged, SequenceNode) else [merged]
            for part in parts:
                if not isinstance(part, MappingNode):
                    raise BadInput(f"{self.at(part)}: '<<' merges a mapping or a list of them")
                other = self.plain(part)
                for key, value in other.items():
                    if key not in result:
                        result[key] = value
                        result.meta[key] = other.meta[key]
        return result


def _syntax_error(exc: yaml.MarkedYAMLError, filename: str) -> BadInput:
    mark = exc.problem_mark or exc.context_mark
    where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.context and problem.startswith("but "):
        problem = f"{exc.context}, {problem}"
    return BadInput(
        f"{where}: YAML syntax error: {problem}",
        hint="check the indentation and quoting around that line",
    )


class _Load:
    """One load: the variables found unset and the files read, across every file."""

    def __init__(self) -> None:
        self.unset: dict[tuple[str, str, int], UnsetVariable] = {}
        self.sources: dict[Path, None] = {}

    def read(self, path: Path, referrer: Position | None) -> str:
        where = f"{referrer}: " if referrer else ""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            hint = (
                "paths in a compose file are relative to its project directory"
                if referrer
                else "check the path; without FILE, lint reads the compose file of this folder"
            )
            raise BadInput(f"{where}{path}: no such file", hint=hint) from None
        except IsADirectoryError:
            raise BadInput(f"{where}{path}: is a directory, not a file") from None
        except UnicodeDecodeError:
            raise BadInput(f"{where}{path}: not UTF-8 text") from None
        except OSError as exc:
            raise BadInput(f"{where}{path}: cannot read: {exc.strerror or exc}") from None
        self.sources.setdefault(path, None)
        return text

    def environment(
        self, parent: Mapping[str, str], files: Sequence[Path], referrer: Position | None
    ) -> dict[str, str]:
        """`parent` plus what the env files add; `parent` wins (the environment beats .env)."""
        found: dict[str, str] = {}
        for path in files:
            text = self.read(Path(path), referrer)
            found.update(parse_dotenv(text, str(path), lambda k: parent.get(k, found.get(k))))
        return {**found, **parent}

    def parse(self, path: Path, env: Mapping[str, str], referrer: Position | None) -> _Map:
        text = self.read(path, referrer)
        documents = _Reader(str(path), env.get, self.unset).documents(text)
        if not documents:
            raise BadInput(f"{path}: empty compose file", hint="a compose file has services:")
        root: Any = None
        for data, position in documents:
            if not isinstance(data, _Map):
                raise BadInput(
                    f"{position}: a compose file is a mapping (services:, volumes:, ...)"
                )
            root = data if root is None else _merge(root, data, ())
        assert isinstance(root, _Map)
        return root

    def project(
        self,
        files: Sequence[Path],
        env: Mapping[str, str],
        directory: Path,
        chain: tuple[Path, ...],
        referrer: Position | None = None,
    ) -> dict[str, _Def]:
        """The services of `files` merged in order, each file's extends and includes
        resolved first (as compose does)."""
        merged: dict[str, _Def] = {}
        for path in files:
            root = self.parse(path, env, referrer)
            defs = _services(root)
            resolved = {name: self.extend(path, name, defs, env, directory, ()) for name in defs}
            for imported in self.includes(root, env, directory, (*chain, path.resolve())):
                for name, d in imported.items():
                    # A service defined here too is merged over the imported one.
                    local = resolved.get(name)
                    if local is None:
                        resolved[name] = d
                    else:
                        resolved[name] = _Def(_merged_def(d, local, name).data, local.position)
            for name, d in resolved.items():
                merged[name] = d if name not in merged else _merged_def(merged[name], d, name)
        return merged

    def extend(
        self,
        path: Path,
        name: str,
        defs: dict[str, _Def],
        env: Mapping[str, str],
        directory: Path,
        chain: tuple[tuple[Path, str], ...],
    ) -> _Def:
        """`name` with its `extends:` resolved, recursively."""
        d = defs[name]
        extends = _unwrap(d.data.get("extends"))
        if extends is None:
            return d
        here = d.data.meta["extends"].position
        key = (path.resolve(), name)
        if key in chain:
            loop = " -> ".join(f"{p.name}:{n}" for p, n in (*chain, key))
            raise BadInput(
                f"{here}: extends cycle: {loop}",
                hint="a service cannot extend itself, directly or through others",
            )
        if isinstance(extends, str):
            ref, file = extends, None
        elif isinstance(extends, _Map):
            ref, file = _unwrap(extends.get("service")), _unwrap(extends.get("file"))
        else:
            raise BadInput(f"{here}: extends is a service name or a mapping with service:")
        if not isinstance(ref, str) or not ref:
            raise BadInput(f"{here}: extends needs the service to extend (service: NAME)")
        if file is None:
            base_path, base_defs, base_dir = path, defs, directory
        elif isinstance(file, str):
            if _remote(file):
                raise BadInput(f"{here}: extends from {file} (remote) cannot be checked here")
            base_path = _join(directory, file)
            base_defs = _services(self.parse(base_path, env, here))
            base_dir = base_path.parent  # its own `extends.file` are relative to it
        else:
            raise BadInput(f"{here}: extends file: is a path")
        if ref not in base_defs:
            raise BadInput(
                f"{here}: service '{name}' extends '{ref}', which {base_path} does not define"
            )
        base = self.extend(base_path, ref, base_defs, env, base_dir, (*chain, key))
        local = _Map()
        for k, v in d.data.items():
            if k != "extends":
                local[k] = v
                local.meta[k] = d.data.meta[k]
        merged = _merge(base.data, local, ("services", name))
        assert isinstance(merged, _Map)
        return _Def(merged, d.position)

    def includes(
        self, root: _Map, env: Mapping[str, str], directory: Path, chain: tuple[Path, ...]
    ) -> Iterator[dict[str, _Def]]:
        entries = root.get("include")
        if entries is None:
            return
        if not isinstance(entries, _Seq):
            raise BadInput(f"{root.meta['include'].position}: include: is a list")
        for entry, here in zip(entries, entries.positions, strict=True):
            project_directory: Any = None
            env_file: Any = None
            if isinstance(entry, str):
                paths: list[str] = [entry]
            elif isinstance(entry, _Map):
                paths = _strings(entry.get("path"), here, "include path")
                project_directory = entry.get("project_directory")
                env_file = entry.get("env_file")
            else:
                raise BadInput(f"{here}: an include is a path or a mapping with path:")
            if not paths:
                raise BadInput(f"{here}: include needs a path")
            for p in paths:
                if _remote(p):
                    raise BadInput(f"{here}: include of {p} (remote) cannot be checked here")
            files = [_join(directory, p) for p in paths]
            for f in files:
                if f.resolve() in chain:
                    raise BadInput(f"{here}: include cycle: {f} includes itself")
            if project_directory is None:
                folder = files[0].parent
            elif isinstance(project_directory, str):
                folder = _join(directory, project_directory)
            else:
                raise BadInput(f"{here}: include project_directory: is a path")
            if env_file is None:
                dotenv = folder / ".env"
                env_paths = [dotenv] if dotenv.is_file() else []
            else:
                names = _strings(env_file, here, "include env_file")
                env_paths = [_join(directory, n) for n in names if n != "/dev/null"]
            environment = self.environment(env, env_paths, here)
            yield self.project(files, environment, folder, chain, here)


def _services(root: _Map) -> dict[str, _Def]:
    raw = root.get("services")
    if raw is None:
        return {}
    if not isinstance(raw, _Map):
        raise BadInput(f"{root.meta['services'].position}: services: maps names to services")
    defs: dict[str, _Def] = {}
    for name, value in raw.items():
        position = raw.meta[name].position
        if value is None:
            value = _Map()
        if not isinstance(value, _Map):
            raise BadInput(f"{position}: service '{name}' must be a mapping")
        defs[name] = _Def(value, position)
    return defs


def _merged_def(base: _Def, over: _Def, name: str) -> _Def:
    merged = _merge(base.data, over.data, ("services", name))
    assert isinstance(merged, _Map)
    return _Def(merged, base.position)


# Merge rules of the compose specification (compose-go's override/merge.go): mappings merge
# key by key, lists append, scalars are replaced; a few keys are always replaced.
_REPLACED = (
    ("services", "*", "command"),
    ("services", "*", "entrypoint"),
    ("services", "*", "healthcheck", "test"),
)
_UNIQUE = (("services", "*", "profiles"),)
_BUILD = ("services", "*", "build")


def _matches(path: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    return len(path) == len(pattern) and all(
        p in ("*", q) for p, q in zip(pattern, path, strict=True)
    )


def _merge(base: Any, over: Any, path: tuple[str, ...]) -> Any:
    if isinstance(over, _Override):
        return over.value
    if any(_matches(path, p) for p in _REPLACED):
        return over
    if _matches(path, _BUILD):  # `build: .` is short for `build: {context: .}`
        base, over = _build_mapping(base), _build_mapping(over)
    if isinstance(base, _Map) and isinstance(over, _Map):
        out = _Map()
        out.update(base)
        out.meta.update(base.meta)
        for key, value in over.items():
            if value is _RESET:
                out.pop(key, None)
                out.meta.pop(key, None)
                continue
            if key in out and not key.startswith("x-"):
                value = _merge(out[key], value, (*path, key))
            out[key] = value
            out.meta[key] = over.meta[key]
        return out
    if isinstance(base, list) and isinstance(over, list):
        seq = _Seq()
        unique = any(_matches(path, p) for p in _UNIQUE)
        for items, positions in ((base, _positions(base)), (over, _positions(over))):
            for item, position in zip(items, positions, strict=True):
                if unique and item in seq:
                    continue
                seq.append(item)
                seq.positions.append(position)
        return seq
    return over


def _positions(items: list[Any]) -> list[Position]:
    if isinstance(items, _Seq):
        return items.positions
    return [Position("", 0)] * len(items)


def _build_mapping(value: Any) -> Any:
    if isinstance(value, str):
        out = _Map()
        out["context"] = value
        out.meta["context"] = _Meta(Position("", 0))
        return out
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, _Override):
        return value.value
    return None if value is _RESET else value


def _strings(value: Any, here: Position, what: str) -> list[str]:
    value = _unwrap(value)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadInput(f"{here}: {what} is a path or a list of paths")


def _join(directory: Path, path: str) -> Path:
    expanded = os.path.expanduser(path)
    return Path(os.path.normpath(directory / expanded))


def _remote(path: str) -> bool:
    return "://" in path or path.startswith("git@")


def _service(name: str, d: _Def, enabled: tuple[str, ...]) -> Service:
    data = d.data
    image = _unwrap(data.get("image"))
    image_meta = data.meta.get("image") if image is not None else None
    if image is not None and not isinstance(image, str):
        where = image_meta.position if image_meta else d.position
        raise BadInput(f"{where}: service '{name}': image must be text, e.g. nginx:1.27")
    build = _unwrap(data.get("build"))
    build_meta = data.meta.get("build") if build is not None else None
    if isinstance(build, str):
        context: str | None = build
    elif isinstance(build, dict):
        context = str(_unwrap(build.get("context")) or ".")
    else:
        context = None
    raw_profiles = _unwrap(data.get("profiles"))
    if raw_profiles is None:
        profiles: tuple[str, ...] = ()
    elif isinstance(raw_profiles, list):
        profiles = tuple(str(p) for p in raw_profiles)
    else:
        where = data.meta["profiles"].position
        raise BadInput(f"{where}: service '{name}': profiles: is a list of names")
    active = not profiles or "*" in enabled or any(p in enabled for p in profiles)
    return Service(
        name=name,
        position=d.position,
        image=image,
        image_source=image_meta.source if image_meta and image_meta.source else image,
        image_position=image_meta.position if image_meta else None,
        unresolved=image_meta.unset if image_meta else (),
        build=build is not None,
        build_context=context,
        build_position=build_meta.position if build_meta else None,
        profiles=profiles,
        active=active,
    )
