"""Loading compose projects without Docker: interpolation, .env, anchors and merge keys,
extends, include, profiles, multi-file merges, positions and errors, as data."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from releasegate.compose.project import (
    ComposeProject,
    RequiredVariable,
    TemplateError,
    find_compose_files,
    interpolate,
    load_project,
    parse_dotenv,
)
from releasegate.errors import BadInput


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def load(root: Path, files: dict[str, str], *names: str, **kwargs: object) -> ComposeProject:
    write(root, files)
    kwargs.setdefault("env", {})
    return load_project([root / n for n in names or ("compose.yaml",)], **kwargs)  # type: ignore[arg-type]


def where(position: object) -> str:
    """'file:line' with the file relative to its folder's parent, for short assertions."""
    text = str(position)
    return text.rsplit("/", 1)[-1] if "/" in text else text


# -- interpolation --------------------------------------------------------------------------
ENV = {"A": "a", "EMPTY": "", "B": "b", "lower": "l"}


# (template, value with ENV, unset variables): also checked against docker compose itself by
# tests/e2e_docker/test_compose_differential.py.
INTERPOLATION: list[tuple[str, str, tuple[str, ...]]] = [
    ("plain", "plain", ()),
    ("$A", "a", ()),
    ("${A}", "a", ()),
    ("x$A-y", "xa-y", ()),
    ("${A}${B}", "ab", ()),
    ("$lower", "l", ()),
    ("$MISSING", "", ("MISSING",)),
    ("${MISSING}", "", ("MISSING",)),
    ("${MISSING:-d}", "d", ()),
    ("${EMPTY:-d}", "d", ()),
    ("${A:-d}", "a", ()),
    ("${MISSING-d}", "d", ()),
    ("${EMPTY-d}", "", ()),
    ("${A:+alt}", "alt", ()),
    ("${EMPTY:+alt}", "", ()),
    ("${EMPTY+alt}", "alt", ()),
    ("${MISSING+alt}", "", ()),
    ("${MISSING:+alt}", "", ()),
    ("${EMPTY?no}", "", ()),
    ("${A:?no}", "a", ()),
    ("${MISSING:-}", "", ()),
    ("${MISSING:-${B:-x}}", "b", ()),
    ("${MISSING:-${NOPE:-x}}", "x", ()),
    ("${MISSING:-$B}", "b", ()),
    ("${MISSING:-${NOPE}}", "", ("NOPE",)),
    ("${A:-${NOPE}}", "a", ()),  # an unused default does not count
    ("${A:+${NOPE}}", "", ("NOPE",)),
    ("${MISSING:-a:b/c@d}", "a:b/c@d", ()),
    ("$$", "$", ()),
    ("$$A", "$A", ()),
    ("$${A}", "${A}", ()),
    ("$$$A", "$a", ()),
    ("${MISSING:-{x}}", "{x}", ()),  # the first `}` closes, as in compose
    ("x$MISSING${A}$OTHER", "xa", ("MISSING", "OTHER")),
    ("repo:${TAG}", "repo:", ("TAG",)),
    # A `$` that starts no variable stays (issue 16, case 19: a bcrypt hash as default).
    ("${HASH:-$2a$14$abc}", "$2a$14", ("abc",)),
    ("${HASH:-$2a$14$.x}", "$2a$14$.x", ()),
    ("a $ b", "a $ b", ()),
    ("cost: 5$", "cost: 5$", ()),
    ("$1", "$1", ()),
    ("$-", "$-", ()),
    ("${A}$", "a$", ()),
    ("${MISSING-$}", "$", ()),
    ("${MISSING:-$}x", "$x", ()),
    ("$$${A}", "$a", ()),
    ("${MISSING:-$${A}}", "${A}", ()),
    # Braces as compose-go counts them: every `{` opens one.
    ("${A:-{x}}", "a", ()),
    ("${MISSING:-{x}", "{x", ()),
    ("${MISSING:-a{b}c}d}", "a{b}cd}", ()),
    ("${MISSING:-{{x}}}}", "{{x}}}", ()),
    ("${MISSING:-x}}", "x}", ()),
    ("${MISSING:-${C:-{y}}z}", "{y}z", ()),
    ("${MISSING:-x}}-${A:-y}", "x}-a", ()),
    ("${A:+x}}", "x}", ()),
    ("{${A}}", "{a}", ()),
    ("${A-x:-y}", "a", ()),
    ("${MISSING-x:-y}", "x:-y", ()),
    ("${A-${B-${C-deep}}}", "a", ()),
    ("${MISSING-${NOPE-${C-deep}}}", "deep", ()),
]


@pytest.mark.parametrize(("text", "value", "unset"), INTERPOLATION)
def test_interpolation(text: str, value: str, unset: tuple[str, ...]) -> None:
    result = interpolate(text, ENV.get)
    assert (result.value, result.unset) == (value, unset)


REQUIRED = [
    ("${MISSING:?set it}", "required variable MISSING is missing a value: set it"),
    ("${EMPTY:?}", "required variable EMPTY is missing a value"),
    ("${MISSING?}", "required variable MISSING is missing a value"),
    ("${A:-${MISSING:?inner}}", "required variable MISSING is missing a value: inner"),
]


@pytest.mark.parametrize(("text", "error"), REQUIRED)
def test_required_variables(text: str, error: str) -> None:
    with pytest.raises(RequiredVariable) as info:
        interpolate(text, ENV.get)
    assert str(info.value) == error


INVALID = ["${}", "${A", "${A.b}", "${1A}", "${A=x}", "${A B}", "${A:-${}}", "${MISSING:-a\nb}"]


@pytest.mark.parametrize("text", INVALID)
def test_invalid_templates(text: str) -> None:
    with pytest.raises(TemplateError):
        interpolate(text, ENV.get)


# -- .env files -----------------------------------------------------------------------------
def test_dotenv_syntax() -> None:
    text = (
        "# comment\n"
        "\n"
        "PLAIN=value\n"
        "SPACED = spaced value  # comment\n"
        "export EXPORTED=yes\n"
        "SINGLE='no $PLAIN here # not a comment'\n"
        'DOUBLE="tab\\there $PLAIN \\"q\\""\n'
        'MULTI="one\n'
        'two"\n'
        "REF=${PLAIN}-${UNSET:-dflt}\n"
        "EMPTY=\n"
        "HASH=a#b\n"
        "FROM_ENV\n"
        "NOT_IN_ENV\n"
        "DOLLAR=$$x\n"
    )
    env = {"FROM_ENV": "outer", "PLAIN": "env-wins"}
    assert parse_dotenv(text, ".env", env.get) == {
        "PLAIN": "value",
        "SPACED": "spaced value",
        "EXPORTED": "yes",
        "SINGLE": "no $PLAIN here # not a comment",
        "DOUBLE": 'tab\there env-wins "q"',
        "MULTI": "one\ntwo",
        "REF": "env-wins-dflt",
        "EMPTY": "",
        "HASH": "a#b",
        "FROM_ENV": "outer",
        "DOLLAR": "$x",
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("A=1\n=2\n", ".env:2: expected KEY=value"),
        ("A 1\n", ".env:1: expected '=' after A"),
        ('A="open\nB=2\n', '.env:1: A: the " quote is never closed'),
        ("A=${B:?needed}\n", ".env:1: A: required variable B is missing a value: needed"),
    ],
)
def test_dotenv_errors(text: str, error: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_dotenv(text, ".env")
    assert info.value.message.startswith(error)


def test_environment_wins_over_dotenv_and_env_files_replace_it(tmp_path: Path) -> None:
    files = {
        "compose.yaml": """
            services:
              web:
                image: app:${TAG}
              db:
                image: postgres:${PG:-16}
            """,
        ".env": "TAG=from-dotenv\nPG=15\n",
        "prod.env": "TAG=from-prod-env\n",
    }
    project = load(tmp_path, files)
    assert project.service("web").image == "app:from-dotenv"
    assert project.service("db").image == "postgres:15"
    project = load(tmp_path, files, env={"TAG": "from-environment"})
    assert project.service("web").image == "app:from-environment"
    project = load(tmp_path, files, env_files=[tmp_path / "prod.env"])
    assert project.service("web").image == "app:from-prod-env"
    assert project.service("db").image == "postgres:16"  # .env is not read then
    assert tmp_path / "prod.env" in project.sources


def test_unset_variables_are_recorded_with_their_position(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "compose.yaml": """
                services:
                  web:
                    image: ${REGISTRY}/app:${TAG:-dev}
                    command: echo $GREETING $$HOME ${WHO-nobody}
                """
        },
    )
    web = project.service("web")
    assert web.image == "/app:dev"
    assert web.image_source == "${REGISTRY}/app:${TAG:-dev}"
    assert web.unresolved == ("REGISTRY",)
    assert [(v.name, where(v.position)) for v in project.unset_variables] == [
        ("REGISTRY", "compose.yaml:3"),
        ("GREETING", "compose.yaml:4"),
    ]


# -- YAML: anchors, merge keys, version -----------------------------------------------------
def test_anchors_merge_keys_and_positions(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "compose.yaml": """
                version: "3.8"
                x-base: &base
                  image: org/app:1.0
                  profiles: [web]
                x-build: &build
                  build: .
                  image: org/other:2.0
                services:
                  plain:
                    <<: *base
                  own-image:
                    <<: *base
                    image: org/app:2.0
                  two:
                    <<: [*build, *base]
                  alias: *base
                """
        },
    )
    plain = project.service("plain")
    assert (plain.image, where(plain.image_position), where(plain.position)) == (
        "org/app:1.0",
        "compose.yaml:3",
        "compose.yaml:9",
    )
    assert plain.profiles == ("web",)
    own = project.service("own-image")
    assert (own.image, where(own.image_position)) == ("org/app:2.0", "compose.yaml:13")
    two = project.service("two")  # the first mapping of a merge list wins
    assert (two.image, two.build, where(two.build_position)) == (
        "org/other:2.0",
        True,
        "compose.yaml:6",
    )
    alias = project.service("alias")
    assert (alias.image, where(alias.image_position)) == ("org/app:1.0", "compose.yaml:3")


def test_yaml_keys_stay_text_and_null_services_are_empty(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "compose.yaml": """
                services:
                  on:
                    image: a:1
                  empty:
                """
        },
    )
    assert [s.name for s in project.services] == ["on", "empty"]
    assert project.service("empty").image is None


# -- extends --------------------------------------------------------------------------------
def test_extends_in_the_same_file_and_across_files(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "compose.yaml": """
                services:
                  base:
                    image: org/base:1
                    profiles: [a]
                  child:
                    extends: base
                    profiles: [b]
                  grandchild:
                    extends:
                      service: child
                  remote:
                    extends:
                      file: common/services.yaml
                      service: worker
                    environment: {X: "1"}
                """,
            "common/services.yaml": """
                services:
                  worker:
                    extends:
                      file: deeper/base.yaml
                      service: root
                    command: work
                """,
            "common/deeper/base.yaml": """
                services:
                  root:
                    build: ./ctx
                    image: org/worker:${TAG:-3}
                """,
        },
    )
    child = project.service("child")
    assert (child.image, where(child.image_position)) == ("org/base:1", "compose.yaml:3")
    assert child.profiles == ("a", "b")
    assert where(child.position) == "compose.yaml:5"
    assert project.service("grandchild").profiles == ("a", "b")
    remote = project.service("remote")
    assert (remote.image, remote.build, remote.build_context) == ("org/worker:3", True, "./ctx")
    assert where(remote.build_position) == "base.yaml:3"
    assert str(remote.build_position).endswith("common/deeper/base.yaml:3")
    assert [s.name for s in project.services] == ["base", "child", "grandchild", "remote"]


@pytest.mark.parametrize(
    ("files", "error"),
    [
        (
            {"compose.yaml": "services:\n  a:\n    extends: a\n"},
            "compose.yaml:3: extends cycle: compose.yaml:a -> compose.yaml:a",
        ),
        (
            {"compose.yaml": "services:\n  a:\n    extends: b\n  b:\n    extends: {service: a}\n"},
            "compose.yaml:3: extends cycle: compose.yaml:a -> compose.yaml:b -> compose.yaml:a",
        ),
        (
            {
                "compose.yaml": "services:\n  a:\n    extends: {file: o.yaml, service: b}\n",
                "o.yaml": "services:\n  b:\n    extends: {file: compose.yaml, service: a}\n",
            },
            "compose.yaml:3: extends cycle: compose.yaml:a -> o.yaml:b -> compose.yaml:a",
        ),
        (
            {"compose.yaml": "services:\n  a:\n    extends: nope\n"},
            "compose.yaml:3: service 'a' extends 'nope', which compose.yaml does not define",
        ),
        (
            {"compose.yaml": "services:\n  a:\n    extends: {file: gone.yaml, service: b}\n"},
            "compose.yaml:3: gone.yaml: no such file",
        ),
        (
            {"compose.yaml": "services:\n  a:\n    extends: {file: x.yaml}\n", "x.yaml": "{}"},
            "compose.yaml:3: extends needs the service to extend (service: NAME)",
        ),
    ],
)
def test_extends_errors(tmp_path: Path, files: dict[str, str], error: str) -> None:
    with pytest.raises(BadInput) as info:
        load(tmp_path, files)
    assert info.value.message.replace(f"{tmp_path}/", "") == error


# -- include --------------------------------------------------------------------------------
def test_include_string_and_mapping_forms(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "compose.yaml": """
                include:
                  - db/compose.yaml
                  - path: cache/compose.yaml
                    env_file: cache/cache.env
                  - path: [api/compose.yaml, api/override.yaml]
                    project_directory: api
                services:
                  web:
                    image: org/web:${WEB_TAG:-1}
                    depends_on: [db]
                  db:
                    environment: {LOCAL: "1"}
                """,
            "db/compose.yaml": """
                services:
                  db:
                    image: postgres:${PG}
                """,
            "db/.env": "PG=16\n",
            "cache/compose.yaml": """
                services:
                  cache:
                    image: redis:${REDIS}
                """,
            "cache/cache.env": "REDIS=7\n",
            "api/compose.yaml": """
                services:
                  api:
                    image: org/api:1
                    extends: {file: base.yaml, service: common}
                """,
            "api/base.yaml": "services:\n  common:\n    build: .\n",
            "api/override.yaml": "services:\n  api:\n    image: org/api:2\n",
        },
    )
    assert [s.name for s in project.services] == ["web", "db", "cache", "api"]
    db = project.service("db")  # defined here too: merged over the imported one
    assert (db.image, where(db.image_position), where(db.position)) == (
        "postgres:16",
        "compose.yaml:3",
        "compose.yaml:11",
    )
    assert str(db.image_position).endswith("db/compose.yaml:3")
    assert project.service("cache").image == "redis:7"
    api = project.service("api")
    assert (api.image, api.build) == ("org/api:2", True)
    assert str(api.build_position).endswith("api/base.yaml:3")
    assert str(api.image_position).endswith("api/override.yaml:3")


def test_include_sees_the_parent_environment_first(tmp_path: Path) -> None:
    files = {
        "compose.yaml": "include:\n  - sub/compose.yaml\n",
        "sub/compose.yaml": "services:\n  s:\n    image: x:${T}\n",
        "sub/.env": "T=sub\n",
    }
    assert load(tmp_path, files).service("s").image == "x:sub"
    assert load(tmp_path, files, env={"T": "parent"}).service("s").image == "x:parent"


@pytest.mark.parametrize(
    ("files", "error"),
    [
        (
            {"compose.yaml": "include:\n  - compose.yaml\n"},
            "compose.yaml:2: include cycle:",
        ),
        (
            {
                "compose.yaml": "include:\n  - a.yaml\n",
                "a.yaml": "include:\n  - path: compose.yaml\n",
            },
            "a.yaml:2: include cycle:",
        ),
        ({"compose.yaml": "include:\n  - gone.yaml\n"}, "compose.yaml:2: "),
        ({"compose.yaml": "include: x.yaml\n"}, "compose.yaml:1: include: is a list"),
        (
            {"compose.yaml": "include:\n  - https://github.com/o/r.git\n"},
            "compose.yaml:2: include of https://github.com/o/r.git (remote)",
        ),
    ],
)
def test_include_errors(tmp_path: Path, files: dict[str, str], error: str) -> None:
    with pytest.raises(BadInput) as info:
        load(tmp_path, files)
    assert error in info.value.message


# -- profiles -------------------------------------------------------------------------------
PROFILES = {
    "compose.yaml": """
        services:
          web:
            image: web:1
          debug:
            image: debug:1
            profiles: [debug]
          tools:
            image: tools:1
            profiles: [debug, ops]
        """
}


@pytest.mark.parametrize(
    ("profiles", "active", "selected"),
    [
        ((), ["web"], ["web", "debug", "tools"]),
        (("ops",), ["web", "tools"], ["web", "tools"]),
        (("debug",), ["web", "debug", "tools"], ["web", "debug", "tools"]),
        (("*",), ["web", "debug", "tools"], ["web", "debug", "tools"]),
        (("nothing",), ["web"], ["web"]),
    ],
)
def test_profiles(
    tmp_path: Path, profiles: tuple[str, ...], active: list[str], selected: list[str]
) -> None:
    project = load(tmp_path, PROFILES, profiles=profiles)
    assert [s.name for s in project.services if s.active] == active
    assert [s.name for s in project.selected] == selected
    assert project.service("tools").profiles == ("debug", "ops")


# -- several files --------------------------------------------------------------------------
def test_later_files_override_earlier_ones(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {
            "compose.yaml": """
                services:
                  web:
                    image: org/web:1
                    profiles: [a]
                  worker:
                    build: ./worker
                    image: org/worker:1
                  cron:
                    build:
                      context: ./cron
                      args: {A: "1"}
                  api:
                    image: org/api:1
                """,
            "prod.yaml": """
                services:
                  web:
                    image: org/web:2
                    profiles: [a, b]
                  worker:
                    build: !reset null
                  cron:
                    build: ./other
                  api:
                    build: !override
                      context: .
                  new:
                    image: org/new:1
                """,
        },
        "compose.yaml",
        "prod.yaml",
    )
    web = project.service("web")
    assert (web.image, where(web.image_position), where(web.position)) == (
        "org/web:2",
        "prod.yaml:3",
        "compose.yaml:2",
    )
    assert web.profiles == ("a", "b")
    worker = project.service("worker")
    assert (worker.build, worker.build_position, worker.image) == (False, None, "org/worker:1")
    cron = project.service("cron")
    assert (cron.build_context, where(cron.build_position)) == ("./other", "prod.yaml:8")
    assert project.service("api").build_context == "."
    assert [s.name for s in project.services] == ["web", "worker", "cron", "api", "new"]


def test_documents_of_one_file_merge_in_order(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        {"compose.yaml": "services:\n  a:\n    image: x:1\n---\nservices:\n  a:\n    image: x:2\n"},
    )
    assert (project.service("a").image, where(project.service("a").image_position)) == (
        "x:2",
        "compose.yaml:7",
    )


# -- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("services:\n  web:\n    image: [a\n", "compose.yaml:4:1: YAML syntax error:"),
        ("services:\n  web:\n\timage: a\n", "compose.yaml:3:1: YAML syntax error:"),
        (
            "services:\n  web:\n    image: a\n    image: b\n",
            "compose.yaml:4: duplicate key 'image' (first at line 3)",
        ),
        ("- a\n- b\n", "compose.yaml:1: a compose file is a mapping"),
        ("# nothing\n", "compose.yaml: empty compose file"),
        ("services: [web]\n", "compose.yaml:1: services: maps names to services"),
        ("services:\n  web: nginx\n", "compose.yaml:2: service 'web' must be a mapping"),
        (
            "services:\n  web:\n    image: a:${T:?set T first}\n",
            "compose.yaml:3: required variable T is missing a value: set T first",
        ),
        (
            "services:\n  web:\n    command: echo ${A B}\n",
            "compose.yaml:3: invalid interpolation:",
        ),
        (
            "services:\n  web:\n    image: 1.5\n",
            "compose.yaml:3: service 'web': image must be text",
        ),
        (
            "services:\n  web:\n    image: a\n    profiles: debug\n",
            "compose.yaml:4: service 'web': profiles: is a list",
        ),
        ("x: &a\n  - *a\n", "compose.yaml:1: an alias refers to itself"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, text: str, error: str) -> None:
    (tmp_path / "compose.yaml").write_text(text)
    with pytest.raises(BadInput) as info:
        load_project([tmp_path / "compose.yaml"], env={})
    assert info.value.message.replace(f"{tmp_path}/", "").startswith(error)


def test_missing_file_and_no_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        load_project([tmp_path / "nope.yaml"], env={})
    with pytest.raises(BadInput, match="no compose file"):
        load_project([], env={})


# -- finding the files ----------------------------------------------------------------------
def test_find_compose_files_like_docker_compose(tmp_path: Path) -> None:
    (tmp_path / "deep" / "er").mkdir(parents=True)
    assert find_compose_files(tmp_path / "deep") == []
    for name in ("docker-compose.yaml", "docker-compose.yml", "compose.yml"):
        (tmp_path / name).write_text("services: {}\n")
    assert find_compose_files(tmp_path) == [tmp_path / "compose.yml"]
    (tmp_path / "docker-compose.override.yml").write_text("services: {}\n")
    assert find_compose_files(tmp_path / "deep" / "er") == [
        tmp_path / "compose.yml",
        tmp_path / "docker-compose.override.yml",
    ]
    (tmp_path / "deep" / "docker-compose.yml").write_text("services: {}\n")
    assert find_compose_files(tmp_path / "deep" / "er") == [
        tmp_path / "deep" / "docker-compose.yml"
    ]
