"""`releasegate init`: a first releasegate.yaml for the app in a folder.

What the folder shows decides the runtime: a compose file means `runtime: compose`, anything
else `runtime: releases`. The text is a template with comments, not a dump of a model: the
comments are the point (what each key does, and the `TODO:` lines a person must fill in).
Pure: detect() reads the folder, render() returns the text; the CLI writes and checks it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from releasegate.config.schema import COMPOSE_FILES

FILENAME = "releasegate.yaml"
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_UNSAFE = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class Detected:
    """What the folder tells about the app; everything else is a TODO in the text."""

    app: str  # a valid stack name prefix
    compose_file: str | None = None  # runtime compose when set
    version_var: str | None = None  # the variable the images' tags use, if one does
    port: int | None = None  # a published host port, for the smoke URL
    install: list[str] = field(default_factory=list)  # argv suggested for `install`
    migrate: list[str] = field(default_factory=list)  # argv suggested for `migrate`

    @property
    def runtime(self) -> str:
        return "compose" if self.compose_file else "releases"


def app_name(folder: Path) -> str:
    """The folder's name as a stack name prefix (`My App` -> `my-app`), else `app`."""
    name = _UNSAFE.sub("-", folder.name.lower()).strip("-_")[:40]
    return name if name and name[0].isalnum() else "app"


def detect(folder: Path) -> Detected:
    app = app_name(folder)
    for name in COMPOSE_FILES:
        if (folder / name).is_file():
            var, port = _compose_facts(folder / name)
            return Detected(app, compose_file=name, version_var=var, port=port)
    install: list[str] = []
    migrate: list[str] = []
    if (folder / "requirements.txt").is_file():
        install = ["pip", "install", "-r", "requirements.txt"]
    elif (folder / "package-lock.json").is_file():
        install = ["npm", "ci"]
    if (folder / "manage.py").is_file():
        migrate = ["python", "manage.py", "migrate"]
    return Detected(app, install=install, migrate=migrate)


def _compose_facts(path: Path) -> tuple[str | None, int | None]:
    """The variable in the first image that uses one, and the first published host port.
    An unreadable file is not init's business (`releasegate lint` tells why): no facts."""
    import yaml

    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None, None
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return None, None
    var = port = None
    for svc in services.values():
        if not isinstance(svc, dict):
            continue
        image = svc.get("image")
        if var is None and isinstance(image, str) and (m := _VAR.search(image.split("/")[-1])):
            var = m.group(1)
        for spec in svc.get("ports") or []:
            if port is None:
                port = _host_port(spec)
    return var, port


def _host_port(spec: Any) -> int | None:
    """`8080:80`, `127.0.0.1:8080:80`, or {published: 8080}: the host side."""
    if isinstance(spec, dict):
        value = str(spec.get("published", ""))
        return int(value) if value.isdigit() else None
    parts = str(spec).split("/")[0].split(":")
    if len(parts) >= 2 and parts[-2].isdigit():
        return int(parts[-2])
    return None


def _flow(argv: list[str]) -> str:
    return "[" + ", ".join(argv) + "]"


_TRAILING = re.compile(r"^(\s*\S.*?)\s{2,}(# .*)$")
COMMENT_COLUMN = 40


def _align(text: str) -> str:
    """Trailing comments start in one column (where the value leaves room)."""
    out = []
    for line in text.splitlines():
        m = _TRAILING.match(line)
        if m:
            line = f"{m.group(1):<{COMMENT_COLUMN - 1}} {m.group(2)}"
        out.append(line)
    return "\n".join(out) + "\n"


def todo_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of each `TODO:` in the text: what a person must fill in."""
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if "TODO:" in line]


def render(d: Detected) -> str:
    """The commented releasegate.yaml for what was detected."""
    staging = f"{d.app}-staging"
    port = d.port or 8080
    head = f"""\
# releasegate.yaml for {d.app}, written by `releasegate init`.
# Fill in every line marked TODO, then check it:
#   releasegate preflight {staging} staging      # the gates, nothing changed
#   releasegate deploy {staging} staging VERSION --dry-run
# Relative paths start beside this file. The reference: docs/configuration.md

# Where the ledger lives (SQLite by default; a SQLAlchemy URL for a shared PostgreSQL).
state: .releasegate/state.db

stacks:
"""
    body = _compose(d, staging, port) if d.compose_file else _releases(d, staging, port)
    return _align(head + body)


def _smoke(port: int) -> str:
    return f"""\
    smoke:                             # run after each deploy; a failure rolls back
      # TODO: a URL of your app that answers 200 only when it really works
      - name: health
        http: http://127.0.0.1:{port}/health
        # body_contains: "{{version}}"   # {{version}}: the version being deployed
        retries: 5
        interval: 1
"""


def _compose(d: Detected, staging: str, port: int) -> str:
    var = d.version_var or "IMAGE_TAG"
    if d.version_var:
        var_note = f"      version_var: {var}            # found in {d.compose_file}'s images"
    else:
        var_note = (
            f"      version_var: {var}            # TODO: no image in {d.compose_file} uses a\n"
            f"                                     # variable yet: write image: REPO:${{{var}}}"
        )
    return f"""\
  {staging}:
    env: staging
    runtime: compose                   # {d.compose_file} found here
    dir: .                             # the run directory: {d.compose_file} and its .env
    compose:
      files: [{d.compose_file}]
{var_note}
      # A version is an image tag: deploy writes {var}=<version> into .env, pulls, and
      # runs `docker compose up -d`. TODO: push the app's images with such tags.
{_smoke(port)}
  # A production stack accepts only versions verified on staging. TODO: uncomment, and
  # point dir at the production run directory (its own compose file and .env).
  # {d.app}-prod:
  #   env: prod                        # prod: `releasegate lint`'s rules gate every deploy
  #   runtime: compose
  #   dir: /srv/{d.app}-prod
  #   promote_from: {staging}
  #   compose: {{version_var: {var}}}
  #   smoke:
  #     - http: https://{d.app}.example.org/health
"""


def _releases(d: Detected, staging: str, port: int) -> str:
    if d.install:
        install = f"      install: {_flow(d.install)}"
    else:
        install = "      # install: [npm, ci]  # TODO: how a release gets its dependencies"
    if d.migrate:
        migrate = f"      migrate: {_flow(d.migrate)}"
    else:
        migrate = "      # migrate: [python, manage.py, migrate]  # if the app has a schema"
    return f"""\
  {staging}:
    env: staging
    runtime: releases                  # no compose file here: release dirs + `current`
    dir: srv/{staging}                 # TODO: the run directory (releases/, shared/, current)
    artifacts: artifacts               # TODO: holds <version>/ or <version>.tar.gz per version
    shared: []                         # e.g. [.env, logs/]: kept in <dir>/shared across releases
    keep_releases: 5
    commands:                          # run in the new release; a list is argv, never a shell
{install}
{migrate}
      # TODO: how the app picks the new release up (current -> releases/<version>). Until
      # then this fails on purpose: a deploy must not pass its smoke checks on the old process.
      restart: [sh, -c, "echo 'TODO: set commands.restart in releasegate.yaml' >&2; exit 1"]
{_smoke(port)}
  # A production stack accepts only versions verified on staging. TODO: uncomment.
  # {d.app}-prod:
  #   env: prod
  #   runtime: releases
  #   dir: /srv/{d.app}-prod
  #   artifacts: artifacts
  #   promote_from: {staging}
  #   commands: {{restart: [systemctl, restart, {d.app}]}}
  #   smoke:
  #     - http: http://127.0.0.1:{port}/health
"""
