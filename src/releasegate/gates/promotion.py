"""The promotion rule of seed 001: a stack with `promote_from` accepts only the version
verified on its source stack; `--force --reason` proceeds and is recorded as FORCED."""

from __future__ import annotations

from releasegate.model import CheckResult


def promotion_check(
    *, stack: str, source: str, version: str, verified_on_source: str | None, forced: bool
) -> CheckResult:
    evidence = {"source": source, "verified_on_source": verified_on_source, "version": version}
    if verified_on_source == version:
        return CheckResult(
            "promotion", True, f"{version} is the version verified on {source}", evidence
        )
    why = (
        f"{source} has no verified version yet"
        if verified_on_source is None
        else f"{source} verified {verified_on_source}, not {version}"
    )
    if forced:
        return CheckResult(
            "promotion",
            True,
            f"FORCED past the promotion gate: {why}",
            {**evidence, "forced": True},
        )
    return CheckResult(
        "promotion",
        False,
        f"{stack} accepts only a version verified on {source}: {why}",
        evidence,
        hint=(
            f"deploy {version} to {source} first (releasegate deploy {source} ...), "
            "or, in an emergency, add --force --reason TEXT (recorded as FORCED)"
        ),
    )
