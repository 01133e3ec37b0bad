"""Line-aware YAML loading: plain data plus the line of every key.

PyYAML's `safe_load` throws positions away and silently keeps the last of two
duplicate keys, so the file is composed into nodes and walked here instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from releasegate.errors import ConfigError

# The C loader is several times faster; fall back when libyaml is missing.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"

KeyPath = tuple[str | int, ...]

# A config is a page of YAML, not data: beyond this it is a mistake or an attack (a 55 MB
# file took a minute and 2 GB to refuse). RELEASEGATE_MAX_CONFIG_BYTES raises the bound.
MAX_CONFIG_BYTES = 1024 * 1024
MAX_BYTES_VAR = "RELEASEGATE_MAX_CONFIG_BYTES"
# Values built again through aliases and merge keys (`*a`, `<<: *a`). A real config reuses a
# few blocks; nine aliases of nine aliases (a 450-byte "billion laughs") are millions.
MAX_ALIAS_VALUES = 50_000


@dataclass
class Source:
    """A parsed file: `data` is what pydantic validates, the maps explain it."""

    filename: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)  # key or list item -> 1-based line
    # Source text of plain scalars that YAML read as a non-string (`no`, `8080`,
    # `2024-01-01`), so a type error can show what the user actually wrote.
    raw: dict[KeyPath, str] = field(default_factory=dict)
    # Paths copied from elsewhere (stack keys filled from `defaults`) -> where they came from.
    origins: dict[KeyPath, KeyPath] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int:
        """Line of `path`, or of its nearest parent that exists (for a missing key)."""
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)


def read_config_text(path: Path) -> str:
    """The file's text, refused past the size limit before it is read whole."""
    filename = str(path)
    limit = max_config_bytes()
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"{filename}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ConfigError(
            f"{filename}: larger than {limit:,} bytes; a releasegate config is much smaller",
            hint=f"check that this is the right file; {MAX_BYTES_VAR}=N allows a larger one",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{filename}: not UTF-8 text (bad byte at offset {exc.start})") from None


def max_config_bytes() -> int:
    value = os.environ.get(MAX_BYTES_VAR, "").strip()
    if not value:
        return MAX_CONFIG_BYTES
    if not value.isdigit() or int(value) <= 0:
        raise ConfigError(f"{MAX_BYTES_VAR}={value!r}: expected a number of bytes")
    return int(value)


def load_yaml_file(path: Path) -> Source:
    """read_config_text + load_yaml: every command reads its config through here."""
    return load_yaml(read_config_text(path), str(path))


def load_yaml(text: str, filename: str) -> Source:
    try:
        root = yaml.compose(text, Loader=_Loader)
    except RecursionError:
        raise ConfigError(f"{filename}: nested too deeply") from None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, filename) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(f"{filename}:{line}: not valid YAML text: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: not valid YAML: {exc}") from None
    source = Source(filename, None)
    if root is None:
        return source
    walker = _Walker(source)
    try:
        source.data = walker.build(root, ())
    except RecursionError:
        raise ConfigError(f"{filename}: nested too deeply") from None
    except _AliasBomb as bomb:
        raise _alias_error(text, filename, bomb.node) from None
    if walker.problems:
        # An anchored mapping is walked again where it is merged: report each problem once.
        raise ConfigError(
            "\n".join(dict.fromkeys(walker.problems)),
            hint="keys appear once per mapping; values are plain YAML (no custom tags)",
        )
    return source


def _syntax_error(exc: yaml.MarkedYAMLError, filename: str) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
    problem = exc.problem or exc.context or "invalid YAML"
    context = exc.context_mark
    if exc.context and problem.startswith("but "):  # "expected X" + "but found Y" read as one
        problem = f"{exc.context}, {problem}"
    elif exc.context and exc.problem and context and mark and context.line != mark.line:
        problem += f" ({exc.context} at line {context.line + 1})"
    message = f"{where}: YAML syntax error: {problem}"
    return ConfigError(message, hint="check the indentation and quoting around that line")


class _AliasBomb(Exception):
    def __init__(self, node: Node) -> None:
        self.node = node  # the outermost aliased node being expanded


def _alias_error(text: str, filename: str, node: Node) -> ConfigError:
    """Name the alias that expands too far, at its own line (nodes only know the anchor's)."""
    mark = node.start_mark
    line = mark.line + 1
    name = None
    try:
        for event in yaml.parse(text, Loader=_Loader):
            anchor, at = getattr(event, "anchor", None), event.start_mark
            if at is None or not anchor:
                continue
            if name is None and at.index == mark.index:
                name = anchor
            elif name and isinstance(event, yaml.AliasEvent) and anchor == name:
                line = at.line + 1
                break
    except yaml.YAMLError:
        pass
    what = f"alias *{name}" if name else f"the value anchored at line {mark.line + 1}"
    return ConfigError(
        f"{filename}:{line}: {what} expands to more than {MAX_ALIAS_VALUES:,} values "
        "(aliases of aliases: a YAML alias bomb?)",
        hint="write the repeated block out, or reuse it fewer times",
    )


class _Walker:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[str] = []
        self.constructor = SafeConstructor()
        self.active: set[int] = set()  # nodes on the current branch, to stop recursive aliases
        self.seen: set[int] = set()  # nodes built once: building one again is an alias
        self.repeats = 0
        self.expanding: Node | None = None  # the outermost alias being built again

    def at(self, node: Node) -> str:
        return f"{self.source.filename}:{node.start_mark.line + 1}"

    def build(self, node: Node, path: KeyPath) -> Any:
        if id(node) not in self.seen:
            self.seen.add(id(node))
            return self.build_node(node, path)
        self.repeats += 1
        if self.expanding is None:
            self.expanding = node
            try:
                return self.build_node(node, path)
            finally:
                self.expanding = None
        if self.repeats > MAX_ALIAS_VALUES:
            raise _AliasBomb(self.expanding)
        return self.build_node(node, path)

    def build_node(self, node: Node, path: KeyPath) -> Any:
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        if id(node) in self.active:
            self.problems.append(f"{self.at(node)}: an alias refers to itself")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode) and node.tag == _MAP:
                return self.mapping(node, path)
            if isinstance(node, SequenceNode) and node.tag == _SEQ:
                items = []
                for index, item in enumerate(node.value):
                    self.source.lines[(*path, index)] = item.start_mark.line + 1
                    items.append(self.build(item, (*path, index)))
                return items
            self.problems.append(f"{self.at(node)}: unsupported YAML tag {node.tag}")
            return None
        finally:
            self.active.discard(id(node))

    def scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        try:
            value = self.constructor.construct_object(node)
        except ConstructorError as exc:
            self.problems.append(f"{self.at(node)}: {exc.problem or 'cannot read this value'}")
            return None
        except ValueError as exc:  # e.g. a timestamp-shaped value that is no real date
            self.problems.append(f"{self.at(node)}: cannot read {node.value!r}: {exc}")
            return None
        if node.style in ("", None) and not isinstance(value, str):
            self.source.raw[path] = node.value
        return value

    def mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                self.problems.append(f"{self.at(key_node)}: a key must be plain text")
                continue
            # Keys stay as written: YAML 1.1 would turn `on:` into True and `1:` into 1.
            key = key_node.value
            if key in first_line:
                self.problems.append(
                    f"{self.at(key_node)}: duplicate key '{key}'"
                    + (f" in {format_path(path)}" if path else "")
                    + f" (first at line {first_line[key]})"
                )
                continue
            first_line[key] = line
            self.source.lines[(*path, key)] = line
            result[key] = self.build(value_node, (*path, key))
        for merged in merges:
            self.merge(result, merged, path)
        return result

    def merge(self, result: dict[str, Any], node: Node, path: KeyPath) -> None:
        """`<<: *anchor`: keys written in the mapping itself win over merged ones."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, MappingNode):
                self.problems.append(f"{self.at(source)}: '<<' needs a mapping or a list of them")
                continue
            # Build into scratch maps so the lines of keys set here are not overwritten.
            lines, raw = self.source.lines, self.source.raw
            self.source.lines, self.source.raw = {}, {}
            try:
                merged = self.build(source, path)
            finally:
                scratch_lines, scratch_raw = self.source.lines, self.source.raw
                self.source.lines, self.source.raw = lines, raw
            added = {key for key in merged or {} if key not in result}
            for key in added:
                result[key] = merged[key]
            depth = len(path)
            lines.update((p, n) for p, n in scratch_lines.items() if p[depth] in added)
            raw.update((p, t) for p, t in scratch_raw.items() if p[depth] in added)


def format_path(path: KeyPath) -> str:
    """('stacks', 'web', 'smoke', 0, 'http') -> 'stacks.web.smoke[0].http'."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part and all(c.isalnum() or c in "_-" for c in part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "(top level)"
