from __future__ import annotations

import click

from releasegate.cli.app import App, print_json
from releasegate.errors import Tampered

pass_app = click.make_pass_decorator(App)


@click.group()
def audit() -> None:
    """The ledger's integrity."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def audit_verify(app: App, as_json: bool) -> int:
    """Walk the hash chain; name the first row that was edited, removed or reordered.

    The head (last seq and hash) is printed: keep it elsewhere to detect a ledger
    rewritten from scratch. Exit 6 when the chain is broken.
    """
    report = app.ledger.verify_chain()
    if as_json:
        print_json(report)
    elif report.ok:
        app.console.print(
            f"[green]ok[/green]: {report.rows_checked} rows, chain intact; "
            f"head {report.head_seq} {report.head_hash}"
        )
    if not report.ok:
        if as_json:
            return 6
        raise Tampered(
            report.message or f"ledger chain broken at row {report.first_bad_seq}",
            hint="restore the ledger from a copy you trust; the rows before that one are intact",
        )
    return 0
