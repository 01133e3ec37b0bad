"""Alembic: `history` and `current` for the state, `upgrade A:B --sql` for the SQL,
`upgrade head` to apply, `stamp` to resolve, `downgrade` to roll back. Linear histories
only: several heads are reported, not guessed at."""

from __future__ import annotations

import re
from dataclasses import dataclass

from releasegate.errors import BadInput
from releasegate.migrations.model import Migration, Status, ToolFailed
from releasegate.migrations.tools.base import ToolAdapter, ToolContext, check_name
from releasegate.transport.base import CommandResult

# `a1b2c3d4e5f6 -> b2c3d4e5f6a1 (head), add memo`; `<base> -> a1b2c3d4e5f6, create invoices`
_HISTORY = re.compile(
    r"^(?P<down><base>|[\w]+(?:,\s*[\w]+)*|\([^)]*\))\s+->\s+(?P<rev>\w+)"
    r"(?:\s+\((?P<tags>[^)]*)\))?,\s?(?P<message>.*)$"
)
_REV = re.compile(r"^(?P<rev>\w+)(?:\s+\((?P<tags>[^)]*)\))?$")


@dataclass(frozen=True)
class Revision:
    rev: str
    down: str | None  # None for the first
    message: str
    tags: tuple[str, ...] = ()


def parse_history(text: str) -> list[Revision]:
    """`alembic history` (newest first) -> revisions oldest first. Raises on a branch."""
    revisions: list[Revision] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = _HISTORY.match(line)
        if not m:
            raise ToolFailed(f"alembic history: unexpected line {line[:120]!r}")
        down = m["down"]
        if "," in down or down.startswith("("):
            raise ToolFailed(f"alembic history: merge revision {m['rev']}: only linear histories")
        tags = tuple(t.strip() for t in (m["tags"] or "").split(",") if t.strip())
        revisions.append(
            Revision(m["rev"], None if down == "<base>" else down, m["message"].strip(), tags)
        )
    revisions.reverse()
    ordered: list[Revision] = []
    by_down = {r.down: r for r in revisions}
    if len(by_down) != len(revisions):
        raise ToolFailed("alembic history: the history branches; only linear histories")
    step = by_down.get(None)
    while step is not None:
        ordered.append(step)
        step = by_down.get(step.rev)
    if len(ordered) != len(revisions):
        raise ToolFailed("alembic history: revisions do not form one chain from <base>")
    return ordered


def parse_revisions(text: str) -> list[str]:
    """`alembic current` / `alembic heads` -> revision ids (tags like (head) dropped)."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = _REV.match(line)
        if not m:
            raise ToolFailed(f"alembic: unexpected line {line[:120]!r}")
        out.append(m["rev"])
    return out


def states(chain: list[Revision], current: list[str]) -> list[Migration]:
    if len(current) > 1:
        raise ToolFailed(f"alembic current: several revisions {current}: only linear histories")
    known = [r.rev for r in chain]
    if current and current[0] not in known:
        raise ToolFailed(f"alembic current: {current[0]} is not in this code's history")
    upto = known.index(current[0]) if current else -1
    return [
        Migration(r.rev, "applied" if i <= upto else "pending", r.message)
        for i, r in enumerate(chain)
    ]


class AlembicAdapter(ToolAdapter):
    def __init__(self, ctx: ToolContext) -> None:
        super().__init__(ctx)
        self._chain: list[Revision] | None = None

    def chain(self) -> list[Revision]:
        if self._chain is None:
            self._chain = parse_history(self.ctx.run_ok("history").stdout)
        return self._chain

    def status(self) -> Status:
        chain = self.chain()
        heads = parse_revisions(self.ctx.run_ok("heads").stdout)
        if len(heads) > 1:
            raise ToolFailed(f"alembic heads: {', '.join(heads)}: merge them first")
        current = parse_revisions(self.ctx.run_ok("current").stdout)
        return Status(
            "alembic",
            self.ctx.database,
            tuple(states(chain, current)),
            evidence=(
                f"alembic current: {', '.join(current) or '(none)'}",
                f"alembic heads: {', '.join(heads) or '(none)'}",
            ),
        )

    def _down(self, name: str) -> str | None:
        for r in self.chain():
            if r.rev == name:
                return r.down
        raise BadInput(f"{name} is not a revision in this code's alembic history")

    def migration_sql(self, names: list[str]) -> list[tuple[str, str]]:
        out = []
        for name in names:
            down = self._down(check_name(name))
            span = f"{down}:{name}" if down else name
            out.append((name, self.ctx.run_ok("upgrade", span, "--sql").stdout))
        return out

    def history_evidence(self, name: str) -> str:
        rows = self.ctx.client.query(self.ctx.database, "SELECT version_num FROM alembic_version")
        found = ", ".join(r[0] for r in rows) or "no row"
        return f"alembic_version: {found} (looking for {name} or a later revision)"

    def resolve_hint(self) -> str:
        return "releasegate migrate resolve STACK {name} --applied (runs alembic stamp)"

    def apply(self) -> CommandResult:
        return self.ctx.run("upgrade", "head")

    def resolve(self, name: str, *, applied: bool, status: Status) -> CommandResult:
        down = self._down(check_name(name))
        return self.ctx.run("stamp", name if applied else (down or "base"))

    def rollback(self, to: str, *, status: Status) -> CommandResult:
        if to != "base":
            self._down(check_name(to))
        return self.ctx.run("downgrade", to)
