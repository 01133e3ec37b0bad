import pytest

from releasegate.gates.preflight import parse_df
from releasegate.gates.promotion import promotion_check


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "Filesystem 1024-blocks Used Available Capacity Mounted on\n"
            "/dev/vda 263174212 23037592 226688464 10% /\n",
            (226688464, 23037592 + 226688464),
        ),
        # a long device name wrapped onto its own line
        (
            "Filesystem 1024-blocks Used Available Capacity Mounted on\n"
            "/dev/mapper/very-long-volume-name\n  1000 900 100 90% /srv\n",
            (100, 1000),
        ),
    ],
)
def test_parse_df(output, expected):
    assert parse_df(output) == expected


def test_parse_df_rejects_garbage():
    with pytest.raises(ValueError):
        parse_df("df: /nope: No such file or directory\n")


def test_promotion_accepts_the_verified_version():
    check = promotion_check(
        stack="p", source="s", version="v2", verified_on_source="v2", forced=False
    )
    assert check.ok


@pytest.mark.parametrize("verified", [None, "v1"])
def test_promotion_refuses_and_says_how_to_fix(verified):
    check = promotion_check(
        stack="p", source="s", version="v2", verified_on_source=verified, forced=False
    )
    assert not check.ok
    assert "deploy v2 to s first" in check.hint and "--force --reason" in check.hint


def test_promotion_forced_passes_and_says_so():
    check = promotion_check(
        stack="p", source="s", version="v2", verified_on_source="v1", forced=True
    )
    assert check.ok and check.summary.startswith("FORCED") and check.evidence["forced"] is True
