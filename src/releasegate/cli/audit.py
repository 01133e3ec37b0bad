from __future__ import annotations

from pathlib import Path

import click

from releasegate.cli.app import App, print_json
from releasegate.errors import BadInput, Tampered

pass_app = click.make_pass_decorator(App)
PATH = click.Path(path_type=Path)


@click.group()
def audit() -> None:
    """The ledger's integrity: verify the chain, anchor its head outside the database."""


@audit.command("verify")
@click.option(
    "--anchor",
    "anchor_path",
    type=PATH,
    metavar="FILE",
    help="Also prove the ledger still extends this anchor (a folder: its newest anchor).",
)
@click.option(
    "--allowed-signers",
    type=PATH,
    metavar="FILE",
    help="With --anchor: require FILE.sig signed by a key in this allowed_signers file.",
)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def audit_verify(
    app: App, anchor_path: Path | None, allowed_signers: Path | None, as_json: bool
) -> int:
    """Walk the hash chain; name the first row that was edited, removed or reordered.

    The head (last seq and hash) is printed; `audit anchor` keeps it outside the
    database, and --anchor then catches a ledger rewritten after it (a tail cut, or
    forged rows with recomputed hashes). Exit 6 when the chain is broken or no longer
    extends the anchor.
    """
    if allowed_signers is not None and anchor_path is None:
        raise BadInput("--allowed-signers checks an anchor's signature: add --anchor FILE")
    report = app.ledger.verify_chain()
    checked = None
    problem: Tampered | None = None
    if report.ok and anchor_path is not None:
        from releasegate.ledger import anchor

        try:
            checked = anchor.check(app.ledger, anchor_path, allowed_signers)
        except Tampered as exc:
            problem = exc
    if as_json:
        if anchor_path is None:
            print_json(report)
        else:
            anchored = {"ok": checked is not None, "message": ""}
            if checked is not None:
                anchored.update(
                    message=checked.message,
                    file=str(checked.path),
                    seq=checked.anchor.seq,
                    hash=checked.anchor.hash,
                    time=checked.anchor.time,
                    signer=checked.signer,
                )
            elif problem is not None:
                anchored["message"] = problem.message
            print_json({"chain": report, "anchor": anchored})
        return 0 if report.ok and problem is None else 6
    if report.ok:
        app.console.print(
            f"[green]ok[/green]: {report.rows_checked} rows, chain intact; "
            f"head {report.head_seq} {report.head_hash}"
        )
    if not report.ok:
        raise Tampered(
            report.message or f"ledger chain broken at row {report.first_bad_seq}",
            hint="restore the ledger from a copy you trust; the rows before that one are intact",
        )
    if problem is not None:
        raise problem
    if checked is not None:
        app.console.print(f"[green]ok[/green]: {checked.message}")
    return 0


@audit.command("anchor")
@click.option(
    "--to",
    "to",
    type=PATH,
    metavar="PATH",
    help="A file (replaced) or a folder (a new file each time); default: audit.anchor.",
)
@click.option(
    "--sign-key",
    type=PATH,
    metavar="KEY",
    help="Sign with this SSH key (ssh-keygen -Y sign): FILE.sig; default: audit.sign_key.",
)
@click.option("--json", "as_json", is_flag=True)
@pass_app
def audit_anchor(app: App, to: Path | None, sign_key: Path | None, as_json: bool) -> int:
    """Write the ledger head (seq, hash, time) to a file outside the database.

    Keep anchors where whoever can write the database cannot (another machine, a
    ticket, a signed file); `audit verify --anchor FILE` later proves the ledger still
    extends them. The config's `audit: {anchor: PATH, sign_key: KEY}` does this after
    every deploy and rollback.
    """
    from releasegate.ledger import anchor

    if to is None or sign_key is None:
        settings = app.config.audit  # only now is the whole config read
        to = to or settings.anchor
        sign_key = sign_key or settings.sign_key
    if to is None:
        raise BadInput(
            "where to? give --to PATH (a file or a folder)",
            hint="or set `audit: {anchor: PATH}` in the config",
        )
    report = app.ledger.verify_chain()  # an anchor must never bless a broken chain
    if not report.ok:
        raise Tampered(
            f"not anchored: {report.message}",
            hint="restore the ledger from a copy you trust, then anchor it",
        )
    written = anchor.write_anchor(app.ledger, to, sign_key)
    if as_json:
        print_json(
            {
                "seq": written.anchor.seq,
                "hash": written.anchor.hash,
                "time": written.anchor.time,
                "file": str(written.path),
                "signature": str(written.signature) if written.signature else None,
            }
        )
        return 0
    app.console.print(f"anchored {written.anchor.describe()}")
    app.console.print(f"  file: {written.path}")
    if written.signature:
        app.console.print(f"  signature: {written.signature}")
    return 0
