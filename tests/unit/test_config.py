"""Valid releasegate.yaml files load into the values the rest of releasegate relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasegate.config import (
    CommandCheck,
    CommandSpec,
    Config,
    Host,
    HttpCheck,
    SmokeCheck,
    load_config,
)
from releasegate.errors import ConfigError

FULL = """\
state: data/state.db
records_dir: out/records
backups_dir: /var/backups/rg
x-smoke: &smoke_defaults
  retries: 5
  interval: 0.5
defaults:
  keep_releases: 4
  artifacts: ./artifacts
  preflight: {disk_free_min_percent: 15, require_commands: [tar, gzip]}
stacks:
  web-staging:
    env: staging
    runtime: releases
    dir: ./srv/web-staging
    shared: [.env, ./logs/, config/app.ini]
    commands:
      install: pip install -r requirements.txt
      migrate: [python, manage.py, migrate]
      restart: systemctl --user restart web
    env_vars: {PORT: "8081", APP_MODE: staging}
    smoke:
      - name: health
        http: http://127.0.0.1:8081/health?full=1
        expect_status: 204
        body_contains: "{version}"
        body_matches: "^ok"
        latency_ms: 1000
        timeout: 10
      - <<: *smoke_defaults
        command: pgrep -f worker
        expect_output: worker
      - command: [test, -f, /tmp/ready]
    preflight:
      commands:
        - name: db-reachable
          run: pg_isready -q
          expect_output: accepting
  web-prod:
    env: prod
    runtime: releases
    hosts:
      - "ssh://deploy@web1.example.com"
      - {host: "ssh://deploy@[2001:db8::1]:2222", roles: [web, migrate]}
    fleet: {strategy: rolling, batch: 50%, max_failures: 1, pause: 2}
    dir: /srv/web-prod
    artifacts: ../shared-artifacts
    keep_releases: 10
    promote_from: web-staging
    backup:
      files: [shared/.env]
    preflight:
      disk_free_min_percent: 30
  worker-prod:
    env: prod
    runtime: releases
    dir: srv/worker
    promote_from: web-staging
"""

MINIMAL = """\
stacks:
  app:
    env: prod
    runtime: releases
    dir: srv/app
    artifacts: artifacts
"""


@pytest.fixture
def full(tmp_path: Path) -> Config:
    path = tmp_path / "releasegate.yaml"
    path.write_text(FULL)
    return load_config(path)


def test_full_top_level(full: Config, tmp_path: Path) -> None:
    assert full.path == tmp_path / "releasegate.yaml"
    assert full.base_dir == tmp_path
    assert full.state_url == str(tmp_path / "data" / "state.db")
    assert full.records_dir == tmp_path / "out" / "records"
    assert full.backups_dir == Path("/var/backups/rg")
    assert list(full.stacks) == ["web-staging", "web-prod", "worker-prod"]
    assert [s.name for s in full.stacks.values()] == ["web-staging", "web-prod", "worker-prod"]
    assert full.stack("web-prod") is full.stacks["web-prod"]


def test_full_staging_stack(full: Config, tmp_path: Path) -> None:
    web = full.stacks["web-staging"]
    assert web.env == "staging"
    assert web.runtime == "releases"
    assert web.hosts == [Host(kind="local")]
    assert web.dir == tmp_path / "srv" / "web-staging"
    assert web.artifacts == tmp_path / "artifacts"  # from defaults
    assert web.shared == [".env", "logs/", "config/app.ini"]  # './' dropped, trailing '/' kept
    assert web.backup_files == ["shared/.env", "shared/logs/", "shared/config/app.ini"]
    assert web.keep_releases == 4  # from defaults
    assert web.promote_from is None
    assert web.env_vars == {"PORT": "8081", "APP_MODE": "staging"}
    assert web.commands.install == CommandSpec("pip install -r requirements.txt")
    assert web.commands.install.argv() == ["sh", "-c", "pip install -r requirements.txt"]
    assert web.commands.migrate is not None
    assert web.commands.migrate.argv("bash") == ["python", "manage.py", "migrate"]
    assert web.commands.stop is None
    # Preflight merges per field: own commands, default thresholds.
    assert web.preflight.disk_free_min_percent == 15
    assert web.preflight.require_commands == ["tar", "gzip"]
    assert [(c.name, c.run.argv(), c.expect_output) for c in web.preflight.commands] == [
        ("db-reachable", ["sh", "-c", "pg_isready -q"], "accepting")
    ]


def test_full_smoke_checks(full: Config) -> None:
    health, worker, ready = full.stacks["web-staging"].smoke
    assert isinstance(health, HttpCheck) and isinstance(health, SmokeCheck)
    assert health.kind == "http"
    assert (health.name, health.http, health.expect_status) == (
        "health",
        "http://127.0.0.1:8081/health?full=1",
        204,
    )
    assert health.body_contains == "{version}"  # left for the caller to substitute
    assert health.body_matches == "^ok"
    assert (health.latency_ms, health.retries, health.interval) == (1000, 3, 1.0)
    assert health.timeout == 10
    assert isinstance(worker, CommandCheck)
    assert worker.kind == "command"
    assert worker.name == "command:pgrep"  # default name: first word
    assert (worker.retries, worker.interval) == (5, 0.5)  # from the YAML anchor
    assert worker.expect_output == "worker"
    assert isinstance(ready, CommandCheck)
    assert ready.name == "command:test"
    assert ready.command.argv() == ["test", "-f", "/tmp/ready"]


def test_full_prod_stacks(full: Config, tmp_path: Path) -> None:
    prod = full.stack("web-prod")
    assert [(h.kind, h.user, h.address, h.port, h.roles) for h in prod.hosts] == [
        ("ssh", "deploy", "web1.example.com", None, ()),  # 22 unless ssh_config says
        ("ssh", "deploy", "2001:db8::1", 2222, ("web", "migrate")),
    ]
    assert [h.label for h in prod.hosts] == ["web1.example.com", "[2001:db8::1]:2222"]
    assert prod.on_ssh_hosts and (prod.fleet.strategy, prod.fleet.batch) == ("rolling", "50%")
    assert (prod.fleet.max_failures, prod.fleet.pause) == (1, 2)
    assert [str(h) for h in prod.hosts] == [
        "ssh://deploy@web1.example.com",
        "ssh://deploy@[2001:db8::1]:2222",
    ]
    assert prod.dir == Path("/srv/web-prod")
    assert prod.artifacts == tmp_path.parent / "shared-artifacts"  # '..' normalised away
    assert prod.keep_releases == 10
    assert prod.backup_files == ["shared/.env"]
    assert prod.preflight.disk_free_min_percent == 30
    assert prod.preflight.require_commands == ["tar", "gzip"]
    assert prod.smoke == []
    assert [s.name for s in full.stacks_promoting_from("web-staging")] == [
        "web-prod",
        "worker-prod",
    ]
    assert full.stacks_promoting_from("web-prod") == []


def test_minimal_file_defaults(tmp_path: Path) -> None:
    (tmp_path / "releasegate.yaml").write_text(MINIMAL)
    config = load_config(tmp_path / "releasegate.yaml")
    assert config.state_url == str(tmp_path / ".releasegate" / "state.db")
    assert config.records_dir == tmp_path / ".releasegate" / "records"
    assert config.backups_dir == tmp_path / ".releasegate" / "backups"
    app = config.stack("app")
    assert app.name == "app"
    assert app.hosts == [Host(kind="local")] and app.hosts[0].is_local
    assert app.shared == [] and app.backup_files == []
    assert app.keep_releases == 5
    assert app.smoke == []
    assert app.env_vars == {}
    assert app.commands.install is None and app.commands.restart is None
    assert app.preflight.disk_free_min_percent == 20
    assert app.preflight.require_commands == ["tar"]
    assert app.preflight.commands == []


def test_state_url_is_kept_as_given(tmp_path: Path) -> None:
    path = tmp_path / "releasegate.yaml"
    path.write_text("state: postgresql://rg@db/releasegate\n" + MINIMAL)
    assert load_config(path).state_url == "postgresql://rg@db/releasegate"


def test_explicit_empty_backup_list(tmp_path: Path) -> None:
    path = tmp_path / "releasegate.yaml"
    path.write_text(MINIMAL + "    shared: [.env]\n    backup: {files: []}\n")
    assert load_config(path).stack("app").backup_files == []


def test_config_is_immutable(tmp_path: Path) -> None:
    path = tmp_path / "releasegate.yaml"
    path.write_text(MINIMAL)
    app = load_config(path).stack("app")
    with pytest.raises(ValueError, match="frozen"):
        app.keep_releases = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("local", ("local", None, None, None)),
        ("ssh://deploy@web1", ("ssh", "deploy", "web1", None)),  # Port: ssh_config's, or 22
        ("ssh://web1", ("ssh", None, "web1", None)),  # User: ssh_config's, or the local one
        ("ssh://deploy@10.0.0.5:2222", ("ssh", "deploy", "10.0.0.5", 2222)),
        ("ssh://ci.bot@[::1]:22", ("ssh", "ci.bot", "::1", 22)),
    ],
)
def test_host_parsing(text: str, expected: tuple[object, ...]) -> None:
    host = Host.model_validate(text)
    assert (host.kind, host.user, host.address, host.port) == expected


def test_command_spec() -> None:
    assert CommandSpec("echo hi").argv() == ["sh", "-c", "echo hi"]
    assert CommandSpec("echo hi").argv(shell="bash") == ["bash", "-c", "echo hi"]
    assert CommandSpec(["echo", "hi"]).argv() == ["echo", "hi"]
    assert CommandSpec("echo hi").is_shell and not CommandSpec(["echo"]).is_shell
    assert str(CommandSpec(["echo", "hi"])) == "echo hi"


def test_relative_paths_follow_the_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "deploy" / "conf"
    conf.mkdir(parents=True)
    (conf / "releasegate.yaml").write_text(
        "state: ../state/rg.db\n" + MINIMAL.replace("dir: srv/app", "dir: ../srv/./app")
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("../deploy/conf/releasegate.yaml"))
    assert config.path == conf / "releasegate.yaml"
    assert config.base_dir == conf
    app = config.stack("app")
    assert app.dir == tmp_path / "deploy" / "srv" / "app"
    assert app.dir.is_absolute()
    assert app.artifacts == conf / "artifacts"
    assert config.state_url == str(tmp_path / "deploy" / "state" / "rg.db")


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = tmp_path / "releasegate.yaml"
    path.write_text("records_dir: ~/records\n" + MINIMAL)
    assert load_config(path).records_dir == tmp_path / "home" / "records"


def test_the_file_is_not_python(tmp_path: Path) -> None:
    path = tmp_path / "releasegate.yaml"
    path.write_text("x: !!python/object/apply:os.system ['true']\n" + MINIMAL)
    with pytest.raises(ConfigError, match=r"releasegate\.yaml:1: .*python/object/apply"):
        load_config(path)


def test_compose_stack_on_hosts(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "docker-compose.yml").write_text("services: {}\n")  # this machine's, not the hosts'
    (tmp_path / "releasegate.yaml").write_text(
        "stacks:\n  web:\n    env: prod\n    runtime: compose\n"
        f"    dir: {run}\n"
        "    hosts: [ssh://deploy@web1:2222, ssh://deploy@web2]\n"
        "    fleet: {strategy: canary, canary: 1}\n"
    )
    stack = load_config(tmp_path / "releasegate.yaml").stack("web")
    assert stack.on_ssh_hosts and stack.fleet.strategy == "canary"
    assert stack.compose_files == ["compose.yaml"]  # docker compose's own first choice
    assert stack.backup_files == ["compose.yaml", ".env"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("{}", (4 << 30, 200_000, 200.0)),
        ("{max_bytes: 512MiB, max_files: 10, max_ratio: 50}", (512 << 20, 10, 50.0)),
        ("{max_bytes: 1g}", (1 << 30, 200_000, 200.0)),
        ("{max_bytes: 2 GB}", (2 << 30, 200_000, 200.0)),
        ("{max_bytes: 1000}", (1000, 200_000, 200.0)),
    ],
)
def test_artifact_limits(tmp_path: Path, given: str, expected: tuple[int, int, float]) -> None:
    path = tmp_path / "releasegate.yaml"
    path.write_text(
        "stacks:\n  web:\n    env: prod\n    runtime: releases\n    dir: srv\n"
        f"    artifacts: a\n    artifact_limits: {given}\n"
    )
    limits = load_config(path).stack("web").artifact_limits.limits()
    assert (limits.max_bytes, limits.max_files, limits.max_ratio) == expected
