"""`releasegate flag set|list|history|rollback STACK ENV ...`: feature switches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from releasegate.cli.app import App, print_json_lines
from releasegate.cli.term import safe
from releasegate.errors import BadInput

pass_app = click.make_pass_decorator(App)
MAX_TARGETING_FILE = 64 * 1024  # bytes of a --targeting-file read at most


@click.group()
def flag() -> None:
    """Feature switches: set, list, history, rollback (a change like a deploy).

    \b
    A flag lives where the app reads it: the stack's .env (seed 003's
    SUPPLIER_EVAL_ENABLED=true) and/or an OpenFeature flagd flag file (targeting:
    a beta group, a percentage). `flags:` in releasegate.yaml declares them.
    """


def _targeting(
    app: App,
    stack: str,
    env: str,
    name: str,
    value: str,
    variant: str | None,
    targeting_file: Path | None,
    percentage: int | None,
    users: str | None,
) -> dict[str, Any] | None:
    """The flagd targeting rule the options describe (at most one of them)."""
    from releasegate.flags import flagd, values

    given = [o for o in (targeting_file, percentage, users) if o is not None]
    if len(given) > 1:
        raise BadInput("use one of --targeting-file, --percentage, --users")
    if not given:
        if variant is not None:
            raise BadInput("--variant goes with --percentage or --users")
        return None
    if targeting_file is not None:
        try:
            with targeting_file.open("rb") as fh:
                raw = fh.read(MAX_TARGETING_FILE + 1)
        except OSError as exc:
            raise BadInput(f"cannot read {targeting_file}: {exc.strerror or exc}") from None
        if len(raw) > MAX_TARGETING_FILE:
            raise BadInput(f"{targeting_file} is larger than {MAX_TARGETING_FILE} bytes")
        try:
            rule = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadInput(f"{targeting_file} is not JSON: {exc}") from None
        if not isinstance(rule, dict):
            raise BadInput(f"{targeting_file}: a targeting rule is a JSON object (JsonLogic)")
        return rule
    stack_cfg = app.config.stack(stack)
    cfgs = stack_cfg.flags
    decl = cfgs.declared.get(name) if cfgs is not None else None
    kind = decl.type if decl is not None else "bool"
    declared = dict(decl.variants) if decl is not None and decl.variants else None
    if variant is None:
        if kind != "bool":
            raise BadInput("--variant NAME: which variant the chosen users get")
        variant = "on"
    values.check_variant(variant)
    if percentage is not None:
        base = declared or (flagd.BOOL_VARIANTS if kind == "bool" else {})
        other, _ = flagd.variant_for(base, kind, values.normalize(kind, value))
        return flagd.percentage_rule(variant, percentage, other)
    assert users is not None
    return flagd.users_rule(variant, users.split(","))


@flag.command("set")
@click.argument("stack")
@click.argument("env")
@click.argument("name")
@click.argument("value")
@click.option("--reason", default="", metavar="TEXT", help="Why: recorded (needed on prod).")
@click.option("--variant", metavar="NAME", help="flagd: the variant the targeted users get.")
@click.option(
    "--targeting-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="flagd: a JsonLogic targeting rule (JSON) for this flag.",
)
@click.option(
    "--percentage", type=click.IntRange(0, 100), help="flagd: this share of users gets --variant."
)
@click.option("--users", metavar="A,B", help="flagd: these users (targeting keys) get --variant.")
@click.option("--json", "as_json", is_flag=True, help="Events and the result as JSON lines.")
@click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="SSH hosts: trust hosts missing from known_hosts (their keys are added and recorded).",
)
@pass_app
def flag_set(
    app: App,
    stack: str,
    env: str,
    name: str,
    value: str,
    reason: str,
    variant: str | None,
    targeting_file: Path | None,
    percentage: int | None,
    users: str | None,
    as_json: bool,
    accept_new_host_keys: bool,
) -> int:
    """Set flag NAME to VALUE for everyone on STACK (whose environment must be ENV).

    \b
    Steps: lock -> gate (prod needs --reason) -> read the flag on every host
    -> write it (one key of the .env, one flag of the flagd file; the rest kept)
    -> reload or restart (flags.apply) -> smoke. A failure puts the old value back,
    applies and smokes it again (exit 4). Recorded: who, why, old -> new.

    \b
    Examples (seed 003: dark launch, beta group, everyone, off again):
      releasegate flag set erp-prod prod SUPPLIER_EVAL_ENABLED false --reason "dark launch"
      releasegate flag set erp-prod prod supplier-eval false --users alice,bob --reason beta
      releasegate flag set erp-prod prod supplier-eval false --percentage 10 --reason "10%"
      releasegate flag set erp-prod prod SUPPLIER_EVAL_ENABLED true --reason "everyone"
      releasegate flag rollback erp-prod prod SUPPLIER_EVAL_ENABLED --reason "INC-7"
    """
    from releasegate.engine.base import HostOptions
    from releasegate.workflows.flags import FlagRequest

    app.json = as_json
    rule = _targeting(app, stack, env, name, value, variant, targeting_file, percentage, users)
    request = FlagRequest(
        stack,
        env,
        name,
        value,
        reason=reason,
        targeting=rule,
        hosts=HostOptions(accept_new_host_keys=accept_new_host_keys),
    )
    return app.finish(app.engine().flag_set(request))


@flag.command("rollback")
@click.argument("stack")
@click.argument("env")
@click.argument("name")
@click.option("--reason", default="", metavar="TEXT", help="Why: recorded (needed on prod).")
@click.option("--json", "as_json", is_flag=True, help="Events and the result as JSON lines.")
@click.option("--accept-new-host-keys", is_flag=True, help="SSH hosts: trust new host keys.")
@pass_app
def flag_rollback(
    app: App,
    stack: str,
    env: str,
    name: str,
    reason: str,
    as_json: bool,
    accept_new_host_keys: bool,
) -> int:
    """Put flag NAME back to the value its last change replaced (a change itself: locked,
    gated, applied, smoked, recorded)."""
    from releasegate.engine.base import HostOptions

    app.json = as_json
    out = app.engine().flag_rollback(
        stack,
        env,
        name,
        reason=reason,
        hosts=HostOptions(accept_new_host_keys=accept_new_host_keys),
    )
    return app.finish(out)


@flag.command("list")
@click.argument("stack")
@click.argument("env")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per flag.")
@pass_app
def flag_list(app: App, stack: str, env: str, as_json: bool) -> int:
    """Declared flags against their values on each host; drift is flagged (hosts that
    differ, a .env and a flag file that disagree, a value set outside releasegate).
    Exit 0, or 1 when there is drift."""
    rows = app.engine().flag_list(stack, env)
    if as_json:
        print_json_lines(rows)
        return 1 if any(r.drift for r in rows) else 0
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for col in ("flag", "type", "default", "value", "recorded", "hosts"):
        table.add_column(col)
    table.add_column("drift", overflow="fold")
    for r in rows:
        hosts = "; ".join(
            f"{h}: {safe(str(v.get('value', v.get('error')) or '(unset)'))}"
            + (f" ({safe(str(v['targeting']))})" if v.get("targeting") else "")
            for h, v in r.hosts.items()
        )
        table.add_row(
            safe(r.name),
            r.type,
            safe(str(r.default)),
            safe(r.value) if r.value is not None else f"(unset: {r.default})",
            safe(str(r.recorded)) if r.recorded is not None else "-",
            hosts,
            "[red]" + safe("; ".join(r.drift)) + "[/]" if r.drift else "[green]none[/]",
        )
    app.console.print(table)
    return 1 if any(r.drift for r in rows) else 0


@flag.command("history")
@click.argument("stack")
@click.argument("env")
@click.option("--flag", "only", metavar="NAME", help="Only this flag.")
@click.option("--last", type=click.IntRange(min=1), metavar="N", help="Only the newest N.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change.")
@pass_app
def flag_history(
    app: App, stack: str, env: str, only: str | None, last: int | None, as_json: bool
) -> int:
    """Every flag change on STACK from the ledger: when, who, old -> new, why, outcome."""
    records = app.engine().flag_history(stack, env, only, last)
    rows = [
        {
            "when": r.started_at,
            "user": r.user,
            "flag": r.details.get("flag") or r.version,  # a refusal by the lock: the name
            "old": r.details.get("old"),
            "new": r.details.get("new"),
            "targeting": r.details.get("targeting"),
            "release": r.details.get("release"),
            "status": r.status,
            "reason": r.reason,
            "rollback_of": r.details.get("rollback_of"),
            "action_id": r.action_id,
        }
        for r in records
    ]
    if as_json:
        print_json_lines(rows)
        return 0
    from rich.table import Table

    from releasegate.flags.flagd import summary

    table = Table(show_edge=False, pad_edge=False)
    for col in ("time", "user", "flag", "change", "release", "status"):
        table.add_column(col, no_wrap=True)
    table.add_column("reason", overflow="fold")
    for rec, row in zip(records, rows, strict=True):
        change = f"{row['old'] if row['old'] is not None else '(unset)'} -> "
        change += f"{row['new'] if row['new'] is not None else '(unset)'}"
        rule = summary(row["targeting"]) if isinstance(row["targeting"], dict) else ""
        table.add_row(
            f"{rec.started_at.astimezone():%Y-%m-%d %H:%M:%S}",
            safe(str(row["user"])),
            safe(str(row["flag"])),
            safe(change + (f" ({rule})" if rule else "")),
            safe(str(row["release"] or "-")),
            safe(str(row["status"])),
            safe(str(row["reason"] or "")),
        )
    app.console.print(table)
    if not rows:
        app.console.print("no flag changes recorded")
    return 0
