"""`releasegate user ...`: the dashboard's users (state database), their roles and API tokens.
Passwords come from a hidden prompt or from stdin (--password-stdin), never from argv,
where `ps` and the shell history would keep them."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from releasegate.cli.app import App, print_json
from releasegate.errors import BadInput

if TYPE_CHECKING:
    from releasegate.users import Users

pass_app = click.make_pass_decorator(App)
ROLE = click.Choice(["viewer", "operator", "approver", "admin"])
STDIN_LIMIT = 4096


def _users(app: App) -> Users:
    try:
        from releasegate.users import Users
    except ImportError as exc:  # argon2-cffi comes with the web extra
        raise BadInput(
            f"user management needs the dashboard's packages ({exc.name} is missing)",
            hint="pip install 'releasegate[web]'",
        ) from exc
    return Users(app.ledger)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        text = sys.stdin.read(STDIN_LIMIT + 1)
        if len(text) > STDIN_LIMIT:
            raise BadInput(f"the password on stdin is longer than {STDIN_LIMIT} bytes")
        return text.rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))


@click.group()
def user() -> None:
    """Dashboard users: add, passwd, remove, list; API tokens for the JSON API."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=ROLE, required=True, help="viewer, operator, approver or admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@pass_app
def user_add(app: App, name: str, role: str, password_stdin: bool) -> int:
    """Add a user who can sign in to `releasegate serve`."""
    users = _users(app)
    users.add(name, _password(password_stdin), role, by=app.actor)
    app.console.print(f"added {name} ({role})", markup=False)
    return 0


@user.command("passwd")
@click.argument("name")
@click.option("--role", type=ROLE, help="Also change the role.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@pass_app
def user_passwd(app: App, name: str, role: str | None, password_stdin: bool) -> int:
    """Set a new password (ends the user's sessions)."""
    users = _users(app)
    if users.get(name) is None:
        raise BadInput(f"no user {name}", hint="releasegate user list")
    users.passwd(name, _password(password_stdin), role=role, by=app.actor)
    app.console.print(f"password of {name} changed; their sessions ended", markup=False)
    return 0


@user.command("role")
@click.argument("name")
@click.argument("role", type=ROLE)
@pass_app
def user_role(app: App, name: str, role: str) -> int:
    """Give a user another role (ends the user's sessions)."""
    _users(app).set_role(name, role, by=app.actor)
    app.console.print(f"{name} is now {role}", markup=False)
    return 0


@user.command("remove")
@click.argument("name")
@pass_app
def user_remove(app: App, name: str) -> int:
    """Remove a user and their API tokens."""
    _users(app).remove(name, by=app.actor)
    app.console.print(f"removed {name}", markup=False)
    return 0


@user.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def user_list(app: App, as_json: bool) -> int:
    """Every user, with their role."""
    users = _users(app)
    found = users.all()
    for u in found:
        if as_json:
            print_json({"name": u.name, "role": u.role, "created": u.created,
                        "tokens": len(users.tokens(u.name))})  # fmt: skip
        else:
            app.console.print(f"{u.name:<24} {u.role:<9} since {u.created}", markup=False)
    if not found and not as_json:
        app.console.print("no users yet: releasegate user add NAME --role viewer")
    return 0


@user.command("token")
@click.argument("name")
@click.option("--label", default="", help="What the token is for (CI, a script).")
@click.option("--revoke", "revoke", metavar="ID|all", help="Revoke one token (its id) or all.")
@pass_app
def user_token(app: App, name: str, label: str, revoke: str | None) -> int:
    """Make an API token for NAME (printed once, kept only as a hash), or --revoke."""
    users = _users(app)
    if revoke is not None:
        count = users.revoke_tokens(
            name, by=app.actor, short_id=None if revoke == "all" else revoke
        )
        app.console.print(f"revoked {count} token(s) of {name}", markup=False)
        return 0 if count else 2
    token = users.new_token(name, label, by=app.actor)
    click.echo(token)
    click.echo("shown once: keep it in your CI's secrets (Authorization: Bearer ...)", err=True)
    return 0
