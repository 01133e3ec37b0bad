"""Entry point. Subcommands are imported only when invoked, so `--version` and `--help`
stay fast (hatch's lazy-import pattern)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from releasegate import __version__

# name -> (module, attribute, one-line help shown in `releasegate --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "deploy": ("releasegate.cli.deploy", "deploy", "Deploy VERSION to a stack through every gate."),
    "rollback": (
        "releasegate.cli.deploy",
        "rollback",
        "Go back to the last good (or a named) version.",
    ),
    "preflight": ("releasegate.cli.checks", "preflight", "Run a stack's preflight gates."),
    "smoke": ("releasegate.cli.checks", "smoke", "Run a stack's smoke checks against what runs."),
    "cron": (
        "releasegate.cli.cron",
        "cron",
        "Scheduled jobs: list and verify what each host has installed.",
    ),
    "check": (
        "releasegate.cli.check",
        "check",
        "Health check: preflight, smoke, data, cron, backup age, lock, ledger.",
    ),
    "lint": ("releasegate.cli.lint", "lint", "Check compose files: no build:, no :latest."),
    "status": (
        "releasegate.cli.info",
        "status",
        "Running, last deployed and verified version per stack.",
    ),
    "verified": (
        "releasegate.cli.info",
        "verified",
        "Verified versions (and export to verified/*.txt).",
    ),
    "history": ("releasegate.cli.info", "history", "What was done, by whom, with what outcome."),
    "backup": ("releasegate.cli.backup", "backup", "Back up, list, verify (by restoring), prune."),
    "restore": ("releasegate.cli.backup", "restore", "Restore a stack's databases from a backup."),
    "stacks": ("releasegate.cli.compose", "stacks", "The stack table: dirs, health URL, versions."),
    "sync": (
        "releasegate.cli.compose",
        "sync",
        "Copy a compose stack's source config to its run dir.",
    ),
    "prune": (
        "releasegate.cli.compose",
        "prune",
        "Remove images of a compose stack's old releases.",
    ),
    "watch": (
        "releasegate.cli.watch",
        "watch",
        "Follow a deploy's watch window; --accept --reason ends it early.",
    ),
    "lock": ("releasegate.cli.lock", "lock", "Show or release stack locks."),
    "audit": ("releasegate.cli.audit", "audit", "Verify the ledger's hash chain."),
    "state": ("releasegate.cli.state", "state", "Copy the ledger into PostgreSQL for a team."),
    "change": ("releasegate.cli.change", "change", "Change records: new, validate, approve, show."),
    "init": (
        "releasegate.cli.init",
        "init",
        "Write a commented releasegate.yaml for the app in this folder.",
    ),
    "demo": (
        "releasegate.cli.demo",
        "demo",
        "Tell the whole story on a sample app, no Docker needed.",
    ),
    "serve": (
        "releasegate.cli.serve",
        "serve",
        "The web dashboard: stacks, history, live runs, approvals, rollbacks.",
    ),
    "user": ("releasegate.cli.user", "user", "Dashboard users, roles and API tokens."),
    "flag": (
        "releasegate.cli.flag",
        "flag",
        "Feature switches: set, list, history, rollback (.env, flagd).",
    ),
    "migrate": (
        "releasegate.cli.migrate",
        "migrate",
        "Migrations: status, lint, rehearse, resolve, rollback.",
    ),
}

EPILOG = """\b
Exit codes:
  0  success
  1  failed, nothing rolled back (or the rollback failed too)
  2  bad input or configuration
  3  refused by a gate (nothing was changed)
  4  failed and rolled back to the last good version
  5  the stack is locked by another run (or was taken over from this one)
  6  the ledger was tampered with (audit verify; a gate refusing an unverified row)

The config is --config, else $RELEASEGATE_CONFIG, else ./releasegate.yaml (or a parent's).
"""


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing help must not import every command module.
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_m, _a, text) in COMMANDS.items()])


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    envvar="RELEASEGATE_CONFIG",
    help="releasegate.yaml to use.",
)
@click.version_option(__version__, prog_name="releasegate")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """releasegate: gated, audited and reversible production changes.

    \b
    Every action is written to the ledger before it starts and closed with its
    outcome; a stack with promote_from accepts only versions verified upstream;
    a release whose smoke checks fail is rolled back automatically.
    """
    from releasegate.cli.app import App

    ctx.obj = App(config_path)
    ctx.call_on_close(ctx.obj.close)


def main(argv: list[str] | None = None) -> None:
    code = run(argv)
    # Exit-time garbage collection walks every object that pydantic, httpx and rich
    # created (about 50 ms); frozen objects are skipped. Cleanup (atexit, the ledger's
    # connection) still runs as usual.
    import gc

    gc.freeze()
    sys.exit(code)


def run(argv: list[str] | None = None) -> int:
    """The command line, returning the exit code (errors are shown, never raised)."""
    from releasegate.errors import ExitCode, ReleasegateError
    from releasegate.execution.interrupts import Interrupted, LockLost

    try:
        rv: Any = cli.main(args=argv, prog_name="releasegate", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return int(ExitCode.BAD_INPUT if exc.exit_code == 2 else exc.exit_code)
    except ReleasegateError as exc:
        from releasegate.cli.app import show_error

        show_error(exc)
        return int(exc.exit_code)
    except LockLost as lost:  # an operation without a run record of its own
        click.echo(f"{lost}: this run stopped at a step boundary (releasegate history)", err=True)
        return lost.exit_code
    except Interrupted as stop:  # before a run's record opened: nothing had started
        click.echo(f"interrupted by {stop.name} before any step: nothing was changed", err=True)
        return stop.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        if os.environ.get("RELEASEGATE_DEBUG"):
            raise
        from releasegate.cli.term import echo

        echo(  # the message may quote a value from a file or an answer
            f"internal error: {type(exc).__name__}: {exc}\n"
            "(set RELEASEGATE_DEBUG=1 to see the traceback, and please report it)",
            err=True,
        )
        return int(ExitCode.FAILED)
    return int(rv or 0)
