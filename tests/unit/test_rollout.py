"""Rollout planning for fleets, as data: batches, failure allowance, parallelism cap."""

from __future__ import annotations

import pytest

from releasegate.cli.deploy import rollout_options
from releasegate.errors import BadInput
from releasegate.execution.rollout import batch_size, batches, parallel_cap, plan_rollout, share

HOSTS = [f"h{i}" for i in range(1, 11)]


@pytest.mark.parametrize(
    ("strategy", "batch", "canary", "sizes"),
    [
        ("all", 1, 1, [10]),
        ("rolling", 3, 1, [3, 3, 3, 1]),
        ("rolling", "25%", 1, [2, 2, 2, 2, 2]),
        ("rolling", "5%", 1, [1] * 10),  # a share below one host is still one host
        ("rolling", 50, 1, [10]),
        ("canary", 1, 1, [1, 9]),
        ("canary", 1, 3, [3, 7]),
        ("canary", 1, 99, [10]),
    ],
)
def test_batches(strategy: str, batch: int | str, canary: int, sizes: list[int]) -> None:
    found = batches(HOSTS, strategy, batch=batch, canary=canary)
    assert [len(b) for b in found] == sizes
    assert [h for b in found for h in b] == HOSTS  # every host once, in the file's order


def test_shares_and_limits() -> None:
    assert share(3, 10) == 3
    assert share("10%", 5) == 0 and share("20%", 5) == 1 and share("100%", 7) == 7
    assert batch_size("0%", 4) == 1
    assert batches([], "all") == []
    with pytest.raises(BadInput):
        batches(HOSTS, "blue-green")
    with pytest.raises(BadInput):
        share("ten", 5)
    # Two descriptors per host in flight, 64 kept for the run itself.
    assert parallel_cap(500, 1024) == 480
    assert parallel_cap(8, 1024) == 8
    assert parallel_cap(100, 70) == 3


def test_plan_rollout_never_tolerates_the_whole_fleet() -> None:
    rollout = plan_rollout(
        HOSTS[:3],
        strategy="rolling",
        batch=1,
        canary=1,
        max_failures="100%",
        parallel=4,
        pause_s=5,
        open_files=1024,
    )
    assert rollout.allowed_failures == 2
    assert rollout.batches == (("h1",), ("h2",), ("h3",))
    assert "5s between batches" in rollout.describe()


def test_rollout_options_from_the_command_line() -> None:
    assert rollout_options(strategy=None, batch="3", max_failures="10%") == {
        "batch": 3,
        "max_failures": "10%",
    }
    for bad in ({"batch": "0"}, {"batch": "x"}, {"max_failures": "101%"}):
        with pytest.raises(BadInput):
            rollout_options(**bad)
