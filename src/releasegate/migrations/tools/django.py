"""Django: `showmigrations --plan` for the state, `sqlmigrate` for the SQL, `migrate` to
apply, `migrate APP NAME --fake` to resolve, `migrate APP NAME` to roll back."""

from __future__ import annotations

import re

from releasegate.errors import BadInput
from releasegate.migrations.model import Migration, Status, ToolFailed
from releasegate.migrations.tools.base import ToolAdapter, check_name, literal
from releasegate.transport.base import CommandResult

# `[X]  shop.0002_order_note ... (shop.0001_initial)` (the dependencies only with -v 2)
_PLAN_LINE = re.compile(r"^\[(?P<mark>[X ])\]\s+(?P<app>[\w]+)\.(?P<name>[\w]+)(?:\s+\.\.\..*)?$")


def parse_plan(text: str) -> list[Migration]:
    """`manage.py showmigrations --plan` -> migrations in the order they apply."""
    out: list[Migration] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = _PLAN_LINE.match(line)
        if not m:
            raise ToolFailed(f"showmigrations --plan: unexpected line {line[:120]!r}")
        name = f"{m['app']}.{m['name']}"
        out.append(Migration(name, "applied" if m["mark"] == "X" else "pending"))
    return out


def split_name(name: str) -> tuple[str, str]:
    """`app.0003_x` -> ('app', '0003_x')."""
    app, sep, migration = check_name(name).partition(".")
    if not sep or not app or not migration or "." in migration:
        raise BadInput(
            f"Django migration {name!r} must be APP.NAME", hint="e.g. shop.0003_order_region"
        )
    return app, migration


class DjangoAdapter(ToolAdapter):
    def status(self) -> Status:
        result = self.ctx.run_ok("showmigrations", "--plan", "--no-color", "-v", "1")
        migrations = parse_plan(result.stdout)
        if self.ctx.apps:
            migrations = [m for m in migrations if m.name.split(".")[0] in self.ctx.apps]
        return Status(
            "django",
            self.ctx.database,
            tuple(migrations),
            evidence=(f"{' '.join(self.ctx.argv)} showmigrations --plan: {len(migrations)}",),
        )

    def migration_sql(self, names: list[str]) -> list[tuple[str, str]]:
        out = []
        for name in names:
            app, migration = split_name(name)
            out.append((name, self.ctx.run_ok("sqlmigrate", "--no-color", app, migration).stdout))
        return out

    def history_evidence(self, name: str) -> str:
        app, migration = split_name(name)
        rows = self.ctx.client.query(
            self.ctx.database,
            "SELECT app, name, applied FROM django_migrations "
            f"WHERE app = {literal(app)} AND name = {literal(migration)}",
        )
        if not rows:
            return f"django_migrations: no row for app={app} name={migration}"
        return "django_migrations: " + " | ".join(rows[0])

    def resolve_hint(self) -> str:
        return "releasegate migrate resolve STACK {name} --applied (runs migrate APP NAME --fake)"

    def apply(self) -> CommandResult:
        if self.ctx.apps:
            result = None
            for app in self.ctx.apps:
                result = self.ctx.run("migrate", "--noinput", "--no-color", app)
                if not result.ok:
                    return result
            assert result is not None
            return result
        return self.ctx.run("migrate", "--noinput", "--no-color")

    def _previous(self, name: str, status: Status) -> str:
        """The migration before `name` in its app ('zero' for the first)."""
        app, _ = split_name(name)
        same_app = [m.name for m in status.migrations if m.name.split(".")[0] == app]
        if name not in same_app:
            raise BadInput(f"{name} is not a migration Django knows", hint=", ".join(same_app))
        index = same_app.index(name)
        return "zero" if index == 0 else same_app[index - 1].split(".", 1)[1]

    def resolve(self, name: str, *, applied: bool, status: Status) -> CommandResult:
        app, migration = split_name(name)
        target = migration if applied else self._previous(name, status)
        return self.ctx.run("migrate", "--noinput", "--no-color", app, target, "--fake")

    def rollback(self, to: str, *, status: Status) -> CommandResult:
        app, migration = split_name(to)
        if migration != "zero" and to not in {m.name for m in status.migrations}:
            raise BadInput(f"{to} is not a migration Django knows")
        return self.ctx.run("migrate", "--noinput", "--no-color", app, migration)
