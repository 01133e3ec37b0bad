"""Flags' pure parts as data: the dotenv edit keeps every other byte, the flagd document
stays valid, names and values are refused where they could break a file or a command."""

from __future__ import annotations

import json
from typing import Any

import pytest

from releasegate.errors import BadInput
from releasegate.flags import dotenv, flagd, values
from releasegate.flags.hostfiles import read_argv, write_argv

SEED = """\
# Django settings read this file
PORT=8000
SECRET_KEY='s3cr3t with spaces'

export SUPPLIER_EVAL_ENABLED=false   # seed 003: dark launch
QUOTED="false"
"""

EDITS = [
    # (text, name, value, expected)
    (
        SEED,
        "SUPPLIER_EVAL_ENABLED",
        "true",
        SEED.replace("export SUPPLIER_EVAL_ENABLED=false ", "export SUPPLIER_EVAL_ENABLED=true "),
    ),
    (SEED, "QUOTED", "true", SEED.replace('QUOTED="false"', 'QUOTED="true"')),
    (SEED, "NEW_FLAG", "on", SEED + "NEW_FLAG=on\n"),
    ("A=1", "B", "2", "A=1\nB=2\n"),  # no final newline: one is added before the new line
    ("A=1\r\nB=2\r\n", "A", "3", "A=3\r\nB=2\r\n"),  # CRLF kept
    ("A=1\r\n", "C", "x", "A=1\r\nC=x\r\n"),
    ("", "A", "true", "A=true\n"),
    ("X=1\nX=2\n", "X", "3", "X=1\nX=3\n"),  # the last assignment is the one readers use
    ("X=1\n", "X", "two words", "X='two words'\n"),
    ("X='a'\n", "X", "b c", "X='b c'\n"),
    ('X="a"\n', "X", "$HOME", "X='$HOME'\n"),  # double quotes would interpolate
    ("X=1\n# X=9\nY=2\n", "X", None, "# X=9\nY=2\n"),  # removed; the comment stays
    ("X=1\nX=2\nY=3", "X", None, "Y=3"),
]


@pytest.mark.parametrize(("text", "name", "value", "expected"), EDITS)
def test_dotenv_edit_keeps_the_rest(text: str, name: str, value: str | None, expected: str) -> None:
    assert dotenv.set_value(text, name, value) == expected
    if value is not None:
        assert dotenv.get_value(dotenv.set_value(text, name, value), name) == value


READS = [
    ("A=1\n", "A", "1"),
    ("export A = 'x # y'  # c\n", "A", "x # y"),
    ('A="a\\"b"\n', "A", 'a"b'),
    ("A=plain # comment\n", "A", "plain"),
    ("A=1\nA=2\n", "A", "2"),
    ("#A=1\n", "A", None),
    ("A=\n", "A", ""),
]


@pytest.mark.parametrize(("text", "name", "expected"), READS)
def test_dotenv_read(text: str, name: str, expected: str | None) -> None:
    assert dotenv.get_value(text, name) == expected


@pytest.mark.parametrize("value", ["it's on", "a\nb", "a\rb"])
def test_dotenv_refuses_unsafe_values(value: str) -> None:
    with pytest.raises(BadInput):
        dotenv.set_value("A=1\n", "A", value)


@pytest.mark.parametrize(
    "name",
    ["", "A=B", "A B", "A;rm", "$(x)", "`x`", "A\nB", "1ABC", "A-B", "A.B", "x" * 129, "é"],
)
def test_dotenv_names_refused(name: str) -> None:
    with pytest.raises(BadInput):
        values.check_name(name, dotenv=True)


@pytest.mark.parametrize("name", ["new-checkout", "a.b", "A_1"])
def test_flagd_keys(name: str) -> None:
    assert values.check_name(name, dotenv=False) == name


@pytest.mark.parametrize("name", ["a=b", "a b", "../x", "a/b", "a;b", "-x"])
def test_flagd_keys_refused(name: str) -> None:
    with pytest.raises(BadInput):
        values.check_name(name, dotenv=False)


NORMALIZE = [
    ("bool", "TRUE", "true"),
    ("bool", "off", "false"),
    ("bool", " 1 ", "true"),
    ("number", "010", None),  # a leading zero is not a number here
    ("number", "10", "10"),
    ("number", "-0.50", "-0.5"),
    ("number", "1e9", None),
    ("bool", "maybe", None),
    ("string", "blue", "blue"),
    ("string", "a\nb", None),
    ("string", "a\x00b", None),
    ("string", "x" * 1025, None),
]


@pytest.mark.parametrize(("kind", "value", "expected"), NORMALIZE)
def test_normalize(kind: str, value: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(BadInput):
            values.normalize(kind, value)
    else:
        assert values.normalize(kind, value) == expected


def test_flagd_set_keeps_other_flags_and_validates() -> None:
    doc = flagd.parse(
        json.dumps(
            {
                "flags": {
                    "other": {
                        "state": "ENABLED",
                        "variants": {"a": "x", "b": "y"},
                        "defaultVariant": "b",
                        "metadata": {"team": "web"},
                    }
                }
            }
        )
    )
    rule = flagd.users_rule("on", ["alice", "bob"])
    new = flagd.set_flag(doc, "beta", "bool", "false", targeting=rule)
    assert new["flags"]["other"] == doc["flags"]["other"]
    assert new["flags"]["beta"] == {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": {"if": [{"in": [{"var": "targetingKey"}, ["alice", "bob"]]}, "on", None]},
    }
    assert new["$schema"] == flagd.SCHEMA
    again = flagd.parse(flagd.dump(new))
    assert flagd.get_state(again, "beta") == flagd.FlagState("false", rule)
    assert flagd.get_state(again, "other").value == "y"
    assert flagd.get_state(again, "missing").value is None
    assert "beta" not in flagd.set_flag(again, "beta", "bool", None)["flags"]


def test_flagd_string_variants() -> None:
    doc = flagd.set_flag(flagd.parse(""), "color", "string", "blue")
    assert doc["flags"]["color"]["variants"] == {"blue": "blue"}
    doc = flagd.set_flag(doc, "color", "string", "red")
    assert doc["flags"]["color"]["defaultVariant"] == "red"
    assert doc["flags"]["color"]["variants"] == {"blue": "blue", "red": "red"}
    with pytest.raises(BadInput):
        flagd.set_flag(doc, "color", "string", "not a name")


def test_flagd_percentage() -> None:
    rule = flagd.percentage_rule("on", 10, "off")
    assert rule["fractional"][1:] == [["on", 10], ["off", 90]]
    assert flagd.summary(rule) == "10% on, 90% off"
    with pytest.raises(BadInput):
        flagd.percentage_rule("on", 101, "off")


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"flags": []},
        {"flags": {"a": {"state": "ON", "variants": {"on": True}, "defaultVariant": "on"}}},
        {"flags": {"a": {"state": "ENABLED", "variants": {}, "defaultVariant": "on"}}},
        {"flags": {"a": {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "x"}}},
        {"flags": {"a": {"state": "ENABLED", "variants": {"a": 1, "b": "2"}}}},
        {"flags": {"a b": {"state": "ENABLED", "variants": {"on": True}}}},
        {"flags": {}, "extra": 1},
        {"flags": {"a": {"state": "ENABLED", "variants": {"on": True}, "targeting": []}}},
    ],
)
def test_flagd_invalid_documents(doc: object) -> None:
    with pytest.raises(BadInput):
        flagd.parse(json.dumps(doc))


def test_flagd_targeting_names_known_variants() -> None:
    with pytest.raises(BadInput):
        flagd.set_flag(
            flagd.parse(""), "f", "bool", "false", targeting=flagd.users_rule("beta", ["a"])
        )


def test_host_commands_are_argv() -> None:
    from pathlib import PurePosixPath

    path = PurePosixPath("/srv/app/shared/.env; rm -rf /")
    # The path is a positional parameter of the shell, never part of its script.
    assert read_argv(path, 1)[3:5] == ["sh", str(path)]
    assert write_argv(path)[-1] == str(path)
    assert str(path) not in read_argv(path, 1)[2] and str(path) not in write_argv(path)[2]


# ---- config, plan, state ---------------------------------------------------------------

STACK = """
stacks:
  web:
    env: staging
    runtime: releases
    dir: srv/web
    artifacts: artifacts
    commands:
      restart: ["pm2", "reload", "web"]
    flags:
{flags}
"""

GOOD_FLAGS = """\
      dotenv: shared/.env
      flagd: shared/flags.json
      declared:
        SUPPLIER_EVAL_ENABLED: {type: bool, default: false, stores: [dotenv]}
        supplier-eval: {type: bool, stores: [flagd]}
        COLOR: {type: string, default: blue}
        TOKEN: {type: string, secret: true, stores: [dotenv]}
"""


def _load(tmp_path: Any, flags: str) -> Any:
    from releasegate.config import load_config

    path = tmp_path / "releasegate.yaml"
    path.write_text(STACK.format(flags=flags))
    return load_config(path)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        ("      apply: restart\n      declared: {A: {}}\n", "dotenv: PATH and/or flagd: PATH"),
        ("      dotenv: /etc/x\n      declared: {A: {}}\n", "relative"),
        ("      dotenv: ../x\n      declared: {A: {}}\n", ".."),
        ("      dotenv: .env\n      declared: {new-x: {}}\n", "it lives in the dotenv file"),
        ("      dotenv: .env\n      declared: {A: {type: bool, default: 3}}\n", "not a bool"),
        ("      dotenv: .env\n      apply: reload\n      declared: {A: {}}\n", "reload: command"),
        ("      dotenv: .env\n      declared: {A: {stores: [flagd]}}\n", "flagd is not configured"),
        ("      dotenv: .env\n      declared: {'A=B': {}}\n", "not allowed"),
        ("      dotenv: .env\n      declared: {}\n", "at least 1"),
    ],
)
def test_config_errors(tmp_path: Any, flags: str, words: str) -> None:
    from releasegate.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        _load(tmp_path, flags)
    assert words in err.value.message, err.value.message


def test_rollback_plan_puts_flags_back_before_the_restart(tmp_path: Any) -> None:
    from releasegate.plan import Facts, plan_rollback

    stack = _load(tmp_path, GOOD_FLAGS).stack("web")
    plan = plan_rollback(stack, "v1", Facts(running="v2", rollback_target=None, artifact="a/v1"))
    assert [s.name for s in plan.steps] == [
        "lock",
        "prepare",
        "switch",
        "flags",
        "restart",
        "smoke",
    ]
    assert plan.steps[3].title == "put back the flags recorded with v1"


def test_state_changes_one_flag_per_store_and_snapshots_mask_secrets(tmp_path: Any) -> None:
    from releasegate.flags import state

    cfg = _load(tmp_path, GOOD_FLAGS).stack("web").flags
    files: dict[str, str | None] = {"dotenv": "TOKEN=abc\n# keep\n", "flagd": None}
    assert cfg.stores_of("COLOR") == ["dotenv", "flagd"]
    new = state.changed(cfg, files, "COLOR", "red", None)
    assert new["dotenv"] == "TOKEN=abc\n# keep\nCOLOR=red\n"
    assert json.loads(new["flagd"])["flags"]["COLOR"]["defaultVariant"] == "red"
    both = {**files, **new}
    assert state.value_of(state.states(cfg, both, "COLOR")).value == "red"
    assert state.drift_in_stores(state.states(cfg, both, "COLOR")) == ""
    both["dotenv"] = both["dotenv"].replace("COLOR=red", "COLOR=green")
    assert "stores differ" in state.drift_in_stores(state.states(cfg, both, "COLOR"))
    snap = state.snapshot(cfg, {"h1": both, "h2": {**both, "dotenv": "COLOR=red\n"}})
    assert snap["TOKEN"] == {"secret": True}  # a secret's value is never kept
    assert snap["SUPPLIER_EVAL_ENABLED"] == {"value": None, "targeting": None}
    assert state.shown(cfg, "TOKEN", "abc") == "***"
    with pytest.raises(BadInput):  # targeting needs a flagd store
        state.changed(cfg, files, "SUPPLIER_EVAL_ENABLED", "true", flagd.users_rule("on", ["a"]))
