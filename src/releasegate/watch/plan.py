"""The deploy plan's `watch` step, as --dry-run prints it and the record lists it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from releasegate.model import Step

if TYPE_CHECKING:
    from releasegate.config.schema import StackConfig


def watch_step(stack: StackConfig, version: str, rollback_target: str | None) -> Step:
    cfg = stack.watch
    assert cfg is not None
    back = rollback_target or "nothing (no earlier good version)"
    title = (
        f"watch {version} for {cfg.duration:g}s, every {cfg.interval:g}s: "
        + "; ".join(cfg.describe())
        + f"; a failing check rolls back to {back}"
    )
    return Step(
        "watch",
        title,
        {"duration_s": cfg.duration, "interval_s": cfg.interval, "checks": cfg.describe()},
    )
