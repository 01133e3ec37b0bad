"""`releasegate lint`: judge compose files against the production rules, without Docker
and without a releasegate.yaml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from releasegate.cli.term import echo
from releasegate.compose.lint import RULES

if TYPE_CHECKING:
    from releasegate.compose.lint import Finding
    from releasegate.compose.project import ComposeProject

_RULE_LIST = "\n".join(f"  {rule:<20} {text}" for rule, text in RULES.items())

HELP = f"""Check compose files against the production rules: images are pulled, never
built on the server, and pinned by a version tag or a digest.

FILE defaults to what `docker compose` reads here: $COMPOSE_FILE, else the first of
compose.yaml, compose.yml, docker-compose.yml, docker-compose.yaml in this folder or
the nearest parent with one, plus its override file (compose.override.yml, ...).
Several FILEs merge in order, like `docker compose -f A -f B`. include:, extends:,
anchors and merge keys, !reset/!override, profiles and ${{VAR}} interpolation (from the
environment, then .env; the environment wins) work as in docker compose, so the
images judged are the ones a deploy would pull. Docker is not needed.

Without --profile every service is judged (a server may enable any profile); with
--profile only the services those profiles start.

\b
Rules (--rule ID, repeatable; default all):
{_RULE_LIST}

An image pinned by digest (name@sha256:..., with or without a tag) always passes.

\b
Examples:
  releasegate lint
  releasegate lint docker-compose.yml docker-compose.prod.yml
  releasegate lint --rule no-build --rule no-latest
  releasegate lint --profile prod --env-file prod.env
  IMAGE_TAG=sha-19b9b98 releasegate lint --json | jq -c 'select(.finding)'

\b
Output: one line per finding, `file:line: service: rule: message`, then its hint.
--json prints one {{"finding": {{...}}}} object per finding, then {{"summary": {{...}}}}.
Exit codes: 0 no findings, 3 findings, 2 a file is missing, unreadable or invalid.
"""


@click.command(help=HELP, short_help="Check compose files: no build:, no :latest, pinned images.")
@click.argument("files", nargs=-1, metavar="[FILE]...", type=click.Path(path_type=Path))
@click.option("--rule", "rules", multiple=True, metavar="ID", help="Run only this rule.")
@click.option(
    "--profile", "profiles", multiple=True, metavar="NAME", help="Enable a compose profile."
)
@click.option(
    "--env-file",
    "env_files",
    multiple=True,
    metavar="PATH",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Read variables from PATH instead of the project's .env.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines: findings, then a summary.")
def lint(
    files: tuple[Path, ...],
    rules: tuple[str, ...],
    profiles: tuple[str, ...],
    env_files: tuple[Path, ...],
    as_json: bool,
) -> int:
    from releasegate.compose.lint import check_rules, lint_project
    from releasegate.compose.project import load_project
    from releasegate.errors import ExitCode

    chosen = check_rules(rules or None)
    paths = list(files) or _default_files()
    project = load_project(paths, profiles=profiles, env_files=env_files or None)
    findings = lint_project(project, chosen)
    code = ExitCode.REFUSED if findings else ExitCode.OK
    if as_json:
        _print_json(project, findings, chosen, int(code))
    else:
        _print_text(project, findings, chosen)
    return int(code)


def _default_files() -> list[Path]:
    from releasegate.compose.project import COMPOSE_FILE_NAMES, find_compose_files
    from releasegate.errors import BadInput

    listed = os.environ.get("COMPOSE_FILE")
    if listed:
        separator = os.environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
        return [Path(p) for p in listed.split(separator) if p]
    here = Path.cwd()
    found = find_compose_files(here)
    if not found:
        raise BadInput(
            f"no compose file here: none of {', '.join(COMPOSE_FILE_NAMES)} in {here} or a parent",
            hint="name the file: releasegate lint path/to/docker-compose.yml",
        )
    return [Path(os.path.relpath(p, here)) for p in found]


def _print_text(project: ComposeProject, findings: list[Finding], rules: tuple[str, ...]) -> None:
    for variable in project.unset_variables:
        echo(
            f"warning: {variable.position}: {variable.name} is not set; "
            "compose uses an empty string",
            err=True,
        )
    for f in findings:
        echo(f"{f.file}:{f.line}: {f.service}: {f.rule}: {f.message}")
        echo(f"  hint: {f.hint}")
    judged = len(project.selected)
    skipped = len(project.services) - judged
    tail = f"; {skipped} not started by profile {', '.join(project.profiles)}" if skipped else ""
    files = ", ".join(str(f) for f in project.files)
    if findings:
        counts: dict[str, int] = {}
        for f in findings:
            counts[f.rule] = counts.get(f.rule, 0) + 1
        by_rule = ", ".join(f"{rule} {n}" for rule, n in counts.items())
        services = len({f.service for f in findings})
        echo(
            f"{len(findings)} finding{'s' if len(findings) != 1 else ''} ({by_rule}) "
            f"in {services} of {judged} services{tail} [{files}]"
        )
    else:
        echo(f"ok: {judged} services pass {', '.join(rules)}{tail} [{files}]")


def _print_json(
    project: ComposeProject, findings: list[Finding], rules: tuple[str, ...], code: int
) -> None:
    from releasegate.cli.app import print_json

    for f in findings:
        print_json({"finding": f})
    counts = {rule: sum(1 for f in findings if f.rule == rule) for rule in rules}
    print_json(
        {
            "summary": {
                "files": [str(f) for f in project.files],
                "project_dir": str(project.project_dir),
                "profiles": list(project.profiles),
                "rules": list(rules),
                "services": [s.name for s in project.selected],
                "skipped": [s.name for s in project.services if s not in project.selected],
                "findings": len(findings),
                "by_rule": counts,
                "unset_variables": [
                    {"name": v.name, "file": v.position.file, "line": v.position.line}
                    for v in project.unset_variables
                ],
                "exit_code": code,
            }
        }
    )
