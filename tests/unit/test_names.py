import pytest

from releasegate import names
from releasegate.errors import BadInput, ExitCode


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("stack", "odoo18-prod"),
        ("stack", "web_seisei"),
        ("env", "prod"),
        ("env", "staging-eu"),
        ("version", "sha-19b9b98"),
        ("version", "v1.2.3"),
        ("version", "2026.01.30_1"),
        ("version", "sha256:" + "a" * 64),
        ("user", "alice@example"),
    ],
)
def test_valid_names(kind, value):
    assert names.check(kind, value) == value


@pytest.mark.parametrize(
    ("kind", "value", "why"),
    [
        ("version", "", "empty"),
        ("version", "v1;rm -rf /", "not allowed"),
        ("version", "$(reboot)", "not allowed"),
        ("version", "`id`", "not allowed"),
        ("version", "v1 v2", "not allowed"),
        ("version", "../etc", ".."),
        ("version", "a/../b", ".."),
        ("version", "v1..2", ".."),
        ("version", "-rf", "not allowed"),
        ("version", ".hidden", "not allowed"),
        ("version", "x" * 129, "not allowed"),
        ("version", "v1\n", "not allowed"),
        ("version", "sha256:abc", "not allowed"),
        ("stack", "Web", "not allowed"),
        ("stack", "web/prod", "not allowed"),
        ("stack", "web|prod", "not allowed"),
        ("stack", "-web", "not allowed"),
        ("stack", "w" * 64, "not allowed"),
        ("env", "1prod", "not allowed"),
        ("env", "prod&", "not allowed"),
        ("user", "a b", "not allowed"),
    ],
)
def test_refused_names(kind, value, why):
    with pytest.raises(BadInput) as info:
        names.check(kind, value)
    assert why in info.value.message
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_overlong_value_is_shortened_in_message():
    with pytest.raises(BadInput) as info:
        names.check("version", "y" * 500)
    assert len(info.value.message) < 300
