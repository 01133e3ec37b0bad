"""`releasegate state`: where the ledger lives. `state copy --to URL` moves it (a SQLite file,
usually) into a team's PostgreSQL, chain intact."""

from __future__ import annotations

import click

from releasegate.cli.app import App, print_json

pass_app = click.make_pass_decorator(App)


@click.group()
def state() -> None:
    """The ledger's home: copy it into PostgreSQL for a team."""


@state.command("copy")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="URL",
    help="The new ledger: postgresql+psycopg://USER@HOST:PORT/DB (an empty database). "
    "The password comes from RELEASEGATE_STATE_PASSWORD, PGPASSWORD or PGPASSFILE.",
)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def state_copy(app: App, target: str, as_json: bool) -> int:
    """Copy this config's ledger (every row, lock and checkpoint) into an empty database at
    URL, verify the copy, and print its head, which `audit verify` on either gives. The
    source is left as it was; point `state:` at URL once the copy is done."""
    from releasegate.config.locate import quick_state_url
    from releasegate.ledger import Ledger
    from releasegate.ledger.copy import check_target_url, copy_ledger

    check_target_url(target)  # before anything is opened: a password on argv is refused
    source_url = quick_state_url(app.config_file) or app.config.state_url
    with Ledger.open(source_url, create=False) as source:
        app.show_notices(source.notices)
        report = copy_ledger(source, target)
    if as_json:
        print_json(report)
        return 0
    app.console.print(f"copied {report.source} -> {report.target}", markup=False)
    app.console.print(report.message, markup=False)
    app.console.print(f"head: {report.head_seq} {report.head_hash}", markup=False)
    app.console.print(
        f"next: set `state: {report.target}` in {app.config_file}; the password stays in "
        "the environment",
        markup=False,
    )
    return 0
