"""Kinds of history (`history --kind`, the dashboard's `kind=`) as data."""

from __future__ import annotations

import click
import pytest

from releasegate.cli.info import history
from releasegate.errors import BadInput
from releasegate.ledger.kinds import KINDS, actions_of, pick
from releasegate.web.views import clean_filters


def test_a_kind_is_a_set_of_actions_and_combines_with_action() -> None:
    assert actions_of("auth") == ("sign-in", "sign-out")
    with pytest.raises(BadInput):
        actions_of("nope")
    assert pick(None) == ()
    assert pick("deploy") == ("deploy",)
    assert pick(None, KINDS["auth"]) == ("sign-in", "sign-out")
    assert pick("sign-out", KINDS["auth"]) == ("sign-out",)
    assert pick("deploy", KINDS["auth"]) == ("",)  # nothing in common: matches nothing


def test_the_cli_and_the_dashboard_offer_the_same_kinds() -> None:
    [option] = [p for p in history.params if p.name == "kind"]
    assert isinstance(option.type, click.Choice)
    assert list(option.type.choices) == list(KINDS)
    assert clean_filters({"kind": "auth"}) == {"kind": "auth"}
    with pytest.raises(BadInput):
        clean_filters({"kind": "../x"})
