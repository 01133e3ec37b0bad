"""The line-aware YAML layer: data, key lines, duplicate keys, anchors and merges."""

from __future__ import annotations

import pytest

from releasegate.config.yamlsource import format_path, load_yaml
from releasegate.errors import ConfigError


def test_lines_of_keys_and_items() -> None:
    source = load_yaml("a: 1\nb:\n  - x\n  - {c: no}\non: 2\n", "f.yaml")
    assert source.data == {"a": 1, "b": ["x", {"c": False}], "on": 2}  # keys stay text
    assert source.lines == {
        ("a",): 1,
        ("b",): 2,
        ("b", 0): 3,
        ("b", 1): 4,
        ("b", 1, "c"): 4,
        ("on",): 5,
    }
    assert source.raw == {("a",): "1", ("b", 1, "c"): "no", ("on",): "2"}
    assert source.line_of(("b", 1, "missing")) == 4
    assert source.line_of(("nothing", "here")) == 1


def test_merge_keys_explicit_wins_and_lines_follow_the_anchor() -> None:
    text = "base: &b\n  x: 1\n  y: 2\nuse:\n  <<: *b\n  y: 3\n"
    source = load_yaml(text, "f.yaml")
    assert source.data["use"] == {"y": 3, "x": 1}
    assert source.lines[("use", "y")] == 6
    assert source.lines[("use", "x")] == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: 2\na: 3\n", "f.yaml:3: duplicate key 'a' (first at line 1)"),
        ("s:\n  - {k: 1, k: 2}\n", "f.yaml:2: duplicate key 'k' in s[0] (first at line 2)"),
        ("a: &x [*x]\n", "f.yaml:1: an alias refers to itself"),
        ("a: !!set {x}\n", "f.yaml:1: unsupported YAML tag tag:yaml.org,2002:set"),
        ("? [a]\n: 1\n", "f.yaml:1: a key must be plain text"),
        (
            "a: 1\n---\nb: 2\n",
            "f.yaml:2:1: YAML syntax error: expected a single document in the stream,"
            " but found another document",
        ),
        ("a: \x07\n", "f.yaml:1: not valid YAML text"),
    ],
)
def test_rejected(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_yaml(text, "f.yaml")
    assert caught.value.message.startswith(message)


def test_format_path() -> None:
    assert format_path(("stacks", "web-prod", "smoke", 0, "expect_status")) == (
        "stacks.web-prod.smoke[0].expect_status"
    )
    assert format_path(("env_vars", "a.b")) == "env_vars['a.b']"
    assert format_path(()) == "(top level)"
