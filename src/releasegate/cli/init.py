"""`releasegate init`: write a first, commented releasegate.yaml for the app in this folder."""

from __future__ import annotations

import os
from pathlib import Path

import click

from releasegate.cli.app import App
from releasegate.errors import BadInput

pass_app = click.make_pass_decorator(App)


@click.command()
@click.option("--name", metavar="NAME", help="Stack name prefix (default: the folder's name).")
@click.option("--force", is_flag=True, help="Replace an existing releasegate.yaml.")
@pass_app
def init(app: App, name: str | None, force: bool) -> int:
    """Write releasegate.yaml for the app in the current folder.

    \b
    A compose file here (compose.yaml, docker-compose.yml, ...) makes a `runtime: compose`
    stack, anything else a `runtime: releases` one. The file is checked as every command
    loads it; its comments say what each key does, and each TODO line what to fill in.
    An existing releasegate.yaml is never replaced without --force.
    """
    from releasegate import init as template
    from releasegate import names
    from releasegate.config.loader import load_config

    folder = Path.cwd()
    target = folder / template.FILENAME
    if target.exists() and not force:
        raise BadInput(
            f"{target} exists: not overwritten",
            hint="edit it, or `releasegate init --force` to start again from the template",
        )
    detected = template.detect(folder)
    if name is not None:
        names.check("stack", f"{name}-staging")
        detected = template.Detected(**{**vars(detected), "app": name})
    text = template.render(detected)

    # Checked before it takes the name: init never leaves a file that does not load.
    tmp = folder / f".{template.FILENAME}.{os.getpid()}.tmp"
    try:
        tmp.write_text(text, encoding="utf-8")
        load_config(tmp)
        if force:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)  # fails if someone wrote the file meanwhile: never replaced
    except FileExistsError:
        raise BadInput(f"{target} exists: not overwritten") from None
    finally:
        tmp.unlink(missing_ok=True)

    # The (empty) ledger too: read-only commands refuse a missing one (a mistyped `state:`
    # must not read as an empty ledger), and `status` is what a newcomer runs next.
    from releasegate.ledger import Ledger

    Ledger.open(load_config(target).state_url).close()

    why = f"{detected.compose_file} found" if detected.compose_file else "no compose file here"
    app.console.print(f"wrote {target} (runtime {detected.runtime}: {why})", markup=False)
    todos = template.todo_lines(text)
    if todos:
        app.console.print("fill in:", markup=False)
        for n, line in todos:
            app.console.print(f"  {template.FILENAME}:{n}: {line}", markup=False)
    app.console.print(
        f"then: releasegate status; releasegate preflight {detected.app}-staging staging",
        markup=False,
        style="dim",
    )
    return 0
