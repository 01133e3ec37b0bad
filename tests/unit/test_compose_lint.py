"""The production rules for compose files, the image reference parser, `releasegate lint`,
and real public compose files (tests/data/compose, see SOURCES.md) with the exact findings
expected of each."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from releasegate.cli.main import run
from releasegate.compose.lint import (
    RULES,
    ImageRef,
    ImageRefError,
    lint_project,
    parse_image_ref,
)
from releasegate.compose.project import load_project
from releasegate.errors import BadInput
from tests.cli import RELEASEGATE

DATA = Path(__file__).resolve().parents[1] / "data" / "compose"
SHA = "sha256:" + "a" * 64


# -- image references -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("nginx", ImageRef(None, "nginx", None, None)),
        ("nginx:1.27", ImageRef(None, "nginx", "1.27", None)),
        ("nginx:latest", ImageRef(None, "nginx", "latest", None)),
        ("library/nginx", ImageRef(None, "library/nginx", None, None)),
        ("docker.io/library/nginx:1", ImageRef("docker.io", "library/nginx", "1", None)),
        ("ghcr.io/owner/repo:sha-19b9b98", ImageRef("ghcr.io", "owner/repo", "sha-19b9b98", None)),
        ("127.0.0.1:5000/app/web", ImageRef("127.0.0.1:5000", "app/web", None, None)),
        ("127.0.0.1:5000/app/web:2", ImageRef("127.0.0.1:5000", "app/web", "2", None)),
        ("localhost/app", ImageRef("localhost", "app", None, None)),
        ("localhost:5000/app:latest", ImageRef("localhost:5000", "app", "latest", None)),
        ("localhost:5000", ImageRef(None, "localhost", "5000", None)),  # as docker reads it
        ("[::1]:5000/app", ImageRef("[::1]:5000", "app", None, None)),
        (
            "registry.example.com:443/a/b/c:v1.2.3",
            ImageRef("registry.example.com:443", "a/b/c", "v1.2.3", None),
        ),
        (f"nginx@{SHA}", ImageRef(None, "nginx", None, SHA)),
        (f"nginx:1.27@{SHA}", ImageRef(None, "nginx", "1.27", SHA)),
        (f"ghcr.io/o/r:latest@{SHA}", ImageRef("ghcr.io", "o/r", "latest", SHA)),
        ("my_app__x-y.z:Tag_1.0-rc", ImageRef(None, "my_app__x-y.z", "Tag_1.0-rc", None)),
        ("netbox:latest-plugins", ImageRef(None, "netbox", "latest-plugins", None)),
        ("MyRegistry/app", ImageRef("MyRegistry", "app", None, None)),  # uppercase: a host
    ],
)
def test_image_references(text: str, ref: ImageRef) -> None:
    assert parse_image_ref(text) == ref


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty image reference"),
        ("nginx 1", "contains whitespace"),
        ("Nginx", "repository names are lowercase"),
        ("org/App:1", "repository names are lowercase"),
        ("nginx:", "invalid tag ''"),
        ("nginx:-x", "invalid tag '-x'"),
        ("apache/airflow:|version|", "invalid tag '|version|'"),
        ("nginx:" + "t" * 129, "invalid tag"),
        ("/app:1", "invalid repository name component ''"),
        ("app//x", "invalid repository name component ''"),
        ("a_-b", "invalid repository name component 'a_-b'"),
        (":1.0", "no repository name"),
        ("nginx@sha256:abc", "invalid digest 'sha256:abc'"),
        ("nginx@sha256:" + "A" * 64, "a sha256 digest is 64 lowercase hex digits"),
        ("nginx@" + "sha256:" + "a" * 63 + "g", "a sha256 digest is 64 lowercase hex digits"),
        ("bad_host.io:x/app", "invalid registry host 'bad_host.io:x'"),
    ],
)
def test_invalid_image_references(text: str, error: str) -> None:
    with pytest.raises(ImageRefError) as info:
        parse_image_ref(text)
    assert str(info.value).startswith(error)


# -- the rules on small projects ------------------------------------------------------------
def findings_of(tmp_path: Path, text: str, **kwargs: object) -> list[tuple[str, str, int]]:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(text).lstrip("\n"))
    kwargs.setdefault("env", {})
    rules = kwargs.pop("rules", None)
    project = load_project([tmp_path / "compose.yaml"], **kwargs)  # type: ignore[arg-type]
    return [(f.rule, f.service, f.line) for f in lint_project(project, rules)]  # type: ignore[arg-type]


RULE_CASES = """
services:
  built:
    build: .
  built-and-named:
    build: .
    image: org/app:latest
  latest:
    image: org/app:latest
  untagged:
    image: org/app
  registry-port:
    image: 127.0.0.1:5000/app/web
  pinned-tag:
    image: ghcr.io/org/app:sha-19b9b98
  digest:
    image: org/app@sha256:HEX
  tag-and-digest:
    image: org/app:latest@sha256:HEX
  unresolved:
    image: ${REGISTRY}/app:${TAG}
  defaulted:
    image: ${REGISTRY:-ghcr.io/org}/app:${TAG:-sha-1}
  defaulted-to-latest:
    image: org/app:${TAG:-latest}
  invalid:
    image: Org/App:1
  nothing:
    restart: always
""".replace("HEX", "a" * 64)


def test_each_rule(tmp_path: Path) -> None:
    assert findings_of(tmp_path, RULE_CASES) == [
        ("no-build", "built", 3),
        ("no-build", "built-and-named", 5),
        ("no-latest", "built-and-named", 6),
        ("no-latest", "latest", 8),
        ("untagged-image", "untagged", 10),
        ("untagged-image", "registry-port", 12),
        ("unresolved-variable", "unresolved", 20),
        ("no-latest", "defaulted-to-latest", 24),
        ("invalid-image", "invalid", 26),
        ("invalid-image", "nothing", 27),
    ]


def test_rules_can_be_chosen(tmp_path: Path) -> None:
    assert findings_of(tmp_path, RULE_CASES, rules=["untagged-image", "no-build"]) == [
        ("no-build", "built", 3),
        ("no-build", "built-and-named", 5),
        ("untagged-image", "untagged", 10),
        ("untagged-image", "registry-port", 12),
    ]
    with pytest.raises(BadInput) as info:
        findings_of(tmp_path, RULE_CASES, rules=["no-latest", "no-sha"])
    assert info.value.message == "unknown rule 'no-sha'"
    assert "no-build" in info.value.hint


def test_setting_the_variable_resolves_the_judgement(tmp_path: Path) -> None:
    text = "services:\n  web:\n    image: ${REGISTRY}/app:${TAG}\n"
    assert findings_of(tmp_path, text) == [("unresolved-variable", "web", 3)]
    env = {"REGISTRY": "ghcr.io/o", "TAG": "latest"}
    assert findings_of(tmp_path, text, env=env) == [("no-latest", "web", 3)]
    env["TAG"] = "sha-19b9b98"
    assert findings_of(tmp_path, text, env=env) == []


def test_findings_carry_evidence_and_hints(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: ${IMG:-org/app}\n    profiles: [prod]\n"
    )
    [finding] = lint_project(load_project([tmp_path / "compose.yaml"], env={}))
    assert (finding.rule, finding.file, finding.line) == (
        "untagged-image",
        str(tmp_path / "compose.yaml"),
        3,
    )
    assert finding.evidence == {
        "image": "org/app",
        "source": "${IMG:-org/app}",
        "registry": None,
        "repository": "org/app",
        "tag": None,
        "digest": None,
        "profiles": ["prod"],
    }
    assert "digest" in finding.hint


def test_profiles_limit_what_is_judged(tmp_path: Path) -> None:
    text = """
        services:
          web:
            image: org/web:1
          dev:
            build: .
            profiles: [dev]
        """
    assert findings_of(tmp_path, text) == [("no-build", "dev", 5)]
    assert findings_of(tmp_path, text, profiles=["prod"]) == []
    assert findings_of(tmp_path, text, profiles=["dev"]) == [("no-build", "dev", 5)]


def test_rule_ids_are_stable() -> None:
    assert list(RULES) == [
        "no-build",
        "no-latest",
        "untagged-image",
        "unresolved-variable",
        "invalid-image",
    ]


# -- real public compose files --------------------------------------------------------------
AIRFLOW_SERVICES = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
    "airflow-cli",
    "flower",
]

# (folder, files, env, env_files, profiles) -> [(rule, service, file, line)]
REAL: list[
    tuple[
        str, list[str], dict[str, str], list[str] | None, list[str], list[tuple[str, str, str, int]]
    ]
] = [
    # Docs placeholder `|version|` left in the default image: not a valid tag.
    (
        "airflow",
        ["docker-compose.yaml"],
        {},
        None,
        [],
        [("invalid-image", s, "docker-compose.yaml", 52) for s in AIRFLOW_SERVICES],
    ),
    (
        "airflow",
        ["docker-compose.yaml"],
        {"AIRFLOW_IMAGE_NAME": "apache/airflow:3.0.2"},
        None,
        [],
        [],
    ),
    (
        "airflow",
        ["docker-compose.yaml"],
        {"AIRFLOW_IMAGE_NAME": "apache/airflow"},
        None,
        ["flower"],  # airflow-cli (profile debug) is not started
        [
            ("untagged-image", s, "docker-compose.yaml", 52)
            for s in AIRFLOW_SERVICES
            if s != "airflow-cli"
        ],
    ),
    ("netbox", ["docker-compose.yml"], {}, None, [], []),
    (
        "netbox",
        ["docker-compose.yml"],
        {"VERSION": "latest"},
        None,
        [],
        [
            ("no-latest", s, "docker-compose.yml", 3)
            for s in ("netbox", "netbox-worker", "netbox-housekeeping")
        ],
    ),
    (
        "netbox",
        ["docker-compose.yml", "docker-compose.override.yml"],
        {},
        None,
        [],
        [
            ("no-build", "netbox", "docker-compose.override.yml", 7),
            ("no-build", "netbox-worker", "docker-compose.override.yml", 12),
            ("no-build", "netbox-housekeeping", "docker-compose.override.yml", 17),
        ],
    ),
    (
        "netbox",
        ["docker-compose.test.yml", "docker-compose.test.override.yml"],
        {},
        None,
        [],
        [
            ("no-latest", s, "docker-compose.test.yml", 3)
            for s in ("netbox", "netbox-worker", "netbox-housekeeping")
        ],
    ),
    ("temporal", ["docker-compose.yml"], {}, None, [], []),
    (
        "temporal",
        ["docker-compose.yml"],
        {},
        [],  # without its .env every image depends on an unset version variable
        [],
        [
            ("unresolved-variable", "elasticsearch", "docker-compose.yml", 13),
            ("unresolved-variable", "postgresql", "docker-compose.yml", 25),
            ("unresolved-variable", "temporal", "docker-compose.yml", 47),
            ("unresolved-variable", "temporal-admin-tools", "docker-compose.yml", 62),
            ("unresolved-variable", "temporal-ui", "docker-compose.yml", 74),
        ],
    ),
    (
        "chatwoot",
        ["docker-compose.production.yaml"],
        {},
        None,
        [],
        [
            ("no-latest", s, "docker-compose.production.yaml", 5)
            for s in ("base", "rails", "sidekiq")
        ],
    ),
    (
        "chatwoot",
        ["docker-compose.yaml"],
        {},
        None,
        [],
        [
            ("no-build", "base", "docker-compose.yaml", 5),
            ("no-build", "rails", "docker-compose.yaml", 20),
            ("no-build", "sidekiq", "docker-compose.yaml", 5),
            ("no-build", "webpack", "docker-compose.yaml", 66),
            ("untagged-image", "mailhog", "docker-compose.yaml", 108),
        ],
    ),
    (
        "awesome-compose-rabbitmq",
        ["compose.yaml"],
        {},
        None,
        [],
        [
            ("no-build", "backend", "compose.yaml", 3),
            ("untagged-image", "db", "compose.yaml", 13),
            ("untagged-image", "proxy", "compose.yaml", 47),
        ],
    ),
    (
        "awesome-compose-react-java-mysql",
        ["docker-compose.yaml"],
        {},
        None,
        [],
        [
            ("no-build", "backend", "docker-compose.yaml", 3),
            ("no-build", "frontend", "docker-compose.yaml", 36),
        ],
    ),
    (
        "compose-go-combined",  # include (a list of paths) of a file that extends another
        ["compose.yaml"],
        {},
        None,
        [],
        [("no-build", "service", "dir/extended.yaml", 3)],
    ),
    (
        "compose-go-extends-withdir",  # extends across folders, twice
        ["compose.yaml"],
        {},
        None,
        [],
        [("untagged-image", "test", "dir/base.yaml", 3)],
    ),
    (
        "compose-go-include-interpolation",
        ["compose-2.yml"],
        {},
        None,
        [],
        [("untagged-image", "busybox", "compose.yml", 4)],
    ),
]


@pytest.mark.parametrize(
    ("folder", "files", "env", "env_files", "profiles", "expected"),
    REAL,
    ids=[f"{r[0]}:{'+'.join(r[1])}:{i}" for i, r in enumerate(REAL)],
)
def test_real_compose_files(
    folder: str,
    files: list[str],
    env: dict[str, str],
    env_files: list[str] | None,
    profiles: list[str],
    expected: list[tuple[str, str, str, int]],
) -> None:
    root = DATA / folder
    project = load_project(
        [root / f for f in files],
        env=env,
        env_files=None if env_files is None else [root / f for f in env_files],
        profiles=profiles,
    )
    found = [
        (f.rule, f.service, Path(f.file).relative_to(root).as_posix(), f.line)
        for f in lint_project(project)
    ]
    assert found == expected


def test_every_real_file_is_attributed() -> None:
    sources = (DATA / "SOURCES.md").read_text()
    for folder in sorted(p for p in DATA.iterdir() if p.is_dir()):
        assert f"`{folder.name}/`" in sources, folder.name


def test_real_files_keep_what_matters_of_each_service() -> None:
    airflow = load_project([DATA / "airflow" / "docker-compose.yaml"], env={})
    assert [s.name for s in airflow.services] == ["postgres", "redis", *AIRFLOW_SERVICES]
    flower = airflow.service("flower")
    assert (flower.profiles, flower.active, str(flower.position).endswith(":315")) == (
        ("flower",),
        False,
        True,
    )
    assert {v.name for v in airflow.unset_variables} == {"AIRFLOW_UID"}

    temporal = load_project([DATA / "temporal" / "docker-compose.yml"], env={})
    assert temporal.service("temporal").image == "temporalio/auto-setup:1.22.3"
    assert temporal.service("temporal").image_source == "temporalio/auto-setup:${TEMPORAL_VERSION}"
    assert DATA / "temporal" / ".env" in temporal.sources

    interpolated = load_project(
        [DATA / "compose-go-include-interpolation" / "compose-2.yml"], env={}
    )
    assert interpolated.unset_variables == ()  # $VAR came from the included project's .env

    netbox = load_project(
        [DATA / "netbox" / "docker-compose.yml", DATA / "netbox" / "docker-compose.override.yml"],
        env={},
    )
    worker = netbox.service("netbox-worker")
    assert (worker.image, str(worker.image_position).endswith("override.yml:11")) == (
        "netbox:latest-plugins",
        True,
    )
    assert str(worker.position).endswith("netbox/docker-compose.yml:20")


# -- the command line -----------------------------------------------------------------------
def test_cli_finds_the_compose_files_like_docker_compose(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPOSE_FILE", raising=False)
    monkeypatch.delenv("VERSION", raising=False)
    monkeypatch.chdir(DATA / "netbox")  # docker-compose.yml + docker-compose.override.yml
    assert run(["lint"]) == 3
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "docker-compose.override.yml:7: netbox: no-build: builds its image on the server "
        "(build context .)"
    )
    assert out[1].startswith("  hint: build and push the image in CI")
    assert out[-1] == (
        "3 findings (no-build 3) in 3 of 6 services "
        "[docker-compose.yml, docker-compose.override.yml]"
    )
    assert run(["lint", "docker-compose.yml"]) == 0
    assert capsys.readouterr().out.startswith("ok: 6 services pass no-build, no-latest")


def test_cli_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA / "chatwoot")
    assert run(["lint", "--json", "--rule", "no-latest", "docker-compose.production.yaml"]) == 3
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["finding"]["service"] for line in lines[:-1]] == ["base", "rails", "sidekiq"]
    assert lines[0]["finding"] == {
        "rule": "no-latest",
        "service": "base",
        "file": "docker-compose.production.yaml",
        "line": 5,
        "message": "image chatwoot/chatwoot:latest uses the :latest tag",
        "hint": lines[0]["finding"]["hint"],
        "evidence": {
            "image": "chatwoot/chatwoot:latest",
            "source": "chatwoot/chatwoot:latest",
            "registry": None,
            "repository": "chatwoot/chatwoot",
            "tag": "latest",
            "digest": None,
        },
    }
    summary = lines[-1]["summary"]
    assert (summary["findings"], summary["rules"], summary["exit_code"]) == (3, ["no-latest"], 3)
    assert summary["unset_variables"] == [
        {"name": "REDIS_PASSWORD", "file": "docker-compose.production.yaml", "line": 53}
    ]


def test_cli_options_and_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(DATA / "temporal")
    assert run(["lint"]) == 0
    assert capsys.readouterr().out.startswith("ok: 5 services pass")
    (tmp_path / "empty.env").write_text("")
    assert run(["lint", "--env-file", str(tmp_path / "empty.env")]) == 3
    captured = capsys.readouterr()
    assert captured.out.count(": unresolved-variable: ") == 5
    assert "warning: docker-compose.yml:74: TEMPORAL_UI_VERSION is not set" in captured.err
    assert run(["lint", "--rule", "no-such-rule"]) == 2
    assert "unknown rule 'no-such-rule'" in capsys.readouterr().err
    assert run(["lint", "missing.yaml"]) == 2
    assert "missing.yaml: no such file" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("services:\n  web:\n    image: [x\n")
    assert run(["lint", str(tmp_path / "bad.yaml")]) == 2
    assert "bad.yaml:4:1: YAML syntax error" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert run(["lint"]) == 2
    assert "no compose file here" in capsys.readouterr().err
    monkeypatch.setenv("COMPOSE_FILE", str(DATA / "airflow" / "docker-compose.yaml"))
    monkeypatch.setenv("AIRFLOW_IMAGE_NAME", "apache/airflow:3.0.2")
    assert run(["lint", "--profile", "flower"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 9 services pass") and "1 not started by profile flower" in out


def test_cli_help_teaches() -> None:
    result = subprocess.run(
        [RELEASEGATE, "lint", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for text in (*RULES, "Examples:", "releasegate lint --json", "Exit codes", "--profile"):
        assert text in result.stdout


def test_lint_is_imported_only_when_it_runs() -> None:
    code = (
        "import sys; from releasegate.cli.main import run; run(['--version']);"
        "print(sorted(m for m in sys.modules if m.startswith('releasegate.compose')"
        " or m == 'yaml'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
