"""The application object: config, ledger, engine and the console, created on demand.
Commands stay thin; everything they print goes through here."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
from collections.abc import Iterable
from datetime import datetime
from functools import cached_property
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import click

from releasegate.cli.term import echo, json_printable, make_console, printable, safe
from releasegate.errors import BadInput, ReleasegateError

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from releasegate.engine import Engine, RunOutcome
    from releasegate.ledger import Ledger
    from releasegate.model import Event
    from releasegate.notify import Notifier


# Commands that only read the ledger: they refuse a `state:` where no ledger exists rather
# than create an empty one (a mistyped path read as "0 rows, chain intact").
READ_ONLY_COMMANDS = frozenset(
    {
        "status",
        "verified",
        "history",
        "stacks",
        "lock status",
        "audit verify",
        "audit anchor",
        "backup list",
        "user list",
        "flag history",
    }
)


def current_command() -> str:
    """'audit verify' for `releasegate audit verify ...`; '' outside a command."""
    ctx = click.get_current_context(silent=True)
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))


def show_error(exc: ReleasegateError) -> None:
    from releasegate.redact import mask_shapes

    # An error may quote a config value or a command's output: credentials masked, controls
    # escaped.
    click.secho(printable(mask_shapes(f"error: {exc.message}")), fg="red", err=True)
    if exc.hint:
        echo(mask_shapes(f"hint: {exc.hint}"), err=True)


def to_jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):  # the common leaves first
        return value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: to_jsonable(getattr(value, name)) for name in _field_names(type(value))}
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _json_default(value: Any) -> Any:
    """What json cannot encode by itself, one level at a time (it recurses in C)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: getattr(value, name) for name in _field_names(type(value))}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_line(value: Any) -> str:
    try:
        line = json.dumps(value, ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError):  # keys json will not take, a value neither knows
        line = json.dumps(to_jsonable(value), ensure_ascii=False)
    return json_printable(line) + "\n"


def print_json(value: Any) -> None:
    sys.stdout.write(_json_line(value))
    sys.stdout.flush()


def print_json_lines(values: Iterable[Any]) -> None:
    """One JSON object per line, written at once (a history of thousands of actions)."""
    sys.stdout.write("".join(_json_line(v) for v in values))
    sys.stdout.flush()


class App:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self.json = False
        # Off where the records are deleted before anyone could open them (a temporary demo).
        self.show_record_paths = True

    @cached_property
    def config(self) -> Any:
        from releasegate.config.loader import load_config

        return load_config(self.config_file)

    @cached_property
    def config_file(self) -> Path:
        from releasegate.config.locate import find_config_path

        return find_config_path(self.config_path)

    @cached_property
    def ledger(self) -> Ledger:
        from releasegate.ledger import Ledger

        # Read-only commands never load the whole config: only where the state lives.
        url = None
        if "config" not in self.__dict__:
            from releasegate.config.locate import quick_state_url

            url = quick_state_url(self.config_file)
        create = current_command() not in READ_ONLY_COMMANDS
        try:
            ledger = Ledger.open(url or self.config.state_url, create=create)
        except BadInput as exc:
            if create or not exc.message.startswith("no ledger at"):
                raise
            where = f"`state:` in {self.config_file}"
            hint = exc.hint.replace("`state:` in the config", where)
            raise BadInput(exc.message, hint=hint) from None
        self.show_notices(ledger.notices)
        return ledger

    def close(self) -> None:
        """Close the ledger's connection when the command ends. The last connection to close
        checkpoints SQLite's write-ahead log into the database and removes it; a connection
        left to exit-time cleanup (skipped: main() freezes the garbage collector) left the
        log growing from command to command, up to 4 MB beside a 4 kB database."""
        ledger = self.__dict__.pop("ledger", None)
        if ledger is not None:
            try:
                ledger.close()
            except Exception:  # noqa: S110 - the command's outcome is already decided
                pass

    def show_notices(self, notices: list[str]) -> None:
        """What core fixed on its way (files at rest tightened): on stderr, also with --json."""
        for notice in notices:
            self.err_console.print(f"notice: {safe(notice)}", style="yellow")

    @cached_property
    def actor(self) -> Any:
        from releasegate.identity import current_actor

        return current_actor()

    @cached_property
    def console(self) -> Console:
        # Piped output has no width; tables then keep whole values rather than 80 columns.
        width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
        return make_console(highlight=False, soft_wrap=True, width=width)

    @cached_property
    def err_console(self) -> Console:
        return make_console(stderr=True, highlight=False, soft_wrap=True)

    def engine(self) -> Engine:
        from releasegate.engine import Engine

        return Engine(self.config, self.ledger, actor=self.actor, emit=self._emit)

    @cached_property
    def notifier(self) -> Notifier | None:
        """`notify:` in the config: Apprise deliveries of runs' events (else None)."""
        from releasegate.notify import notifier_for

        return notifier_for(self.config, self.ledger, self.actor)

    def _emit(self, event: Event) -> None:
        self.render_event(event)
        if self.notifier is not None:
            self.notifier.on_event(event)  # a deploy started: announced, not waited for

    # -- events ------------------------------------------------------------------------------
    def render_event(self, event: Event) -> None:
        if self.json:
            print_json(
                {
                    "event": event.kind,
                    "stack": event.stack,
                    "step": event.step,
                    "ok": event.ok,
                    "message": event.message,
                    "data": event.data,
                }
            )
            return
        c = self.err_console
        if event.kind == "run_started":
            c.print(f"[bold]▶ {safe(event.message)}[/bold]")
        elif event.kind == "step_started":
            c.print(f"  … {safe(event.step)}", style="dim")
        elif event.kind == "step_finished":
            mark = "[green]✔[/green]" if event.ok else "[red]✘[/red]"
            took = event.data.get("duration_s")
            c.print(
                f"  {mark} {safe(event.step)}: {safe(event.message)}"
                + (f" [dim]({took:.2f}s)[/dim]" if took else ""),
                markup=True,
                highlight=False,
            )
            if event.data.get("tail"):  # the end of a failed command's output, masked
                from rich.text import Text

                for line in str(event.data["tail"]).splitlines():
                    c.print(Text("      │ " + printable(line), style="dim"), highlight=False)
        elif event.kind == "check":
            mark = "[green]·[/green]" if event.ok else "[red]✘[/red]"
            c.print(f"      {mark} {safe(event.message)}")
        elif event.kind == "host":  # a fleet: one line per host as it finishes a phase
            mark = "[green]·[/green]" if event.ok else "[red]✘[/red]"
            c.print(f"      {mark} {safe(event.step)} {safe(event.message)}", highlight=False)
        elif event.kind == "message":
            c.print(f"  ! {safe(event.message)}", style="yellow")

    # -- outcomes ------------------------------------------------------------------------------
    def finish(self, out: RunOutcome, *, record: bool = True) -> int:
        from releasegate import record as records

        if record:
            notices: list[str] = []
            try:
                out.record_path = records.write(
                    out,
                    self.config.records_dir,
                    user=self.actor.user,
                    host=self.actor.host,
                    notices=notices,
                )
            except OSError as exc:  # a full disk must not hide the outcome
                out.hint = (out.hint + "; " if out.hint else "") + (
                    f"the execution record could not be written: {exc.strerror or exc}"
                )
            self.show_notices(notices)
            notifier = self.__dict__.get("notifier")  # set up only by an engine's run
            if notifier is not None:  # after the record: the message names its path
                self.show_notices(
                    [f"notification {d.target} failed: {d.detail}" for d in notifier.finished(out)
                     if not d.ok]
                )  # fmt: skip
        if self.json:
            print_json(
                {
                    "result": {
                        "action": out.action,
                        "stack": out.stack,
                        "env": out.env,
                        "version": out.version,
                        "status": out.status,
                        "exit_code": int(out.exit_code),
                        "message": out.message,
                        "hint": out.hint,
                        "record": out.record_path,
                        "action_id": out.action_id,
                        "steps": out.steps,
                        **({"hosts": out.details["hosts"]} if "hosts" in out.details else {}),
                        "followups": [
                            {
                                "action": f.action,
                                "version": f.version,
                                "status": f.status,
                                "message": f.message,
                            }
                            for f in out.followups
                        ],
                    }
                }
            )
            return int(out.exit_code)
        style = {"success": "green", "rolled_back": "yellow", "refused": "red", "failed": "red"}
        label = {
            "success": "OK",
            "rolled_back": "ROLLED BACK",
            "refused": "REFUSED",
            "failed": "FAILED",
            "aborted": "ABORTED",
        }
        for f in out.followups:
            if f is not out:
                self.console.print(
                    f"[{style.get(f.status, 'red')}]{f.action} {f.version}: {safe(f.message)}[/]"
                )
        self.console.print(
            f"[bold {style.get(out.status, 'red')}]{label.get(out.status, out.status)}"
            f"[/]: {safe(out.message)}"
        )
        if out.hint:
            self.console.print(f"hint: {safe(out.hint)}", style="dim")
        if out.record_path and self.show_record_paths:
            self.console.print(f"record: {out.record_path}", style="dim")
        return int(out.exit_code)
