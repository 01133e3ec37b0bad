"""The promotion rule of seed 001: a stack with `promote_from` accepts only the version
verified on its source stack; `--force --reason` proceeds and is recorded as FORCED."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from releasegate.model import CheckResult


def content_changes(verified: Mapping[str, Any], here: Mapping[str, Any]) -> list[str]:
    """What differs between the content verified on the source and the content here, for
    the keys both know (a missing side is no proof either way)."""
    changes = []
    for key in sorted(set(verified) & set(here)):
        if verified[key] != here[key]:
            changes.append(f"{key} {here[key]} here, {verified[key]} verified")
    return changes


def promotion_check(
    *,
    stack: str,
    source: str,
    version: str,
    verified_on_source: str | None,
    forced: bool,
    verified_content: Mapping[str, Any] | None = None,
    content: Mapping[str, Any] | None = None,
) -> CheckResult:
    """The version must be the one verified on `source`, and, where both are known, its
    content the content verified there (an artifact's sha256, each image's digest)."""
    evidence: dict[str, Any] = {
        "source": source,
        "verified_on_source": verified_on_source,
        "version": version,
    }
    changed = content_changes(verified_content or {}, content or {})
    if verified_on_source == version and changed:
        evidence["content"] = {
            "verified": dict(verified_content or {}),
            "here": dict(content or {}),
        }
        why = "; ".join(changed)
        if forced:
            return CheckResult("promotion", True, f"FORCED past the promotion gate: {why}",
                               {**evidence, "forced": True})  # fmt: skip
        return CheckResult(
            "promotion",
            False,
            f"{stack} accepts only what {source} verified: {version} has other content: {why}",
            evidence,
            hint=f"the artifact of {version} changed after {source} verified it: build a new "
            f"version and verify it on {source}",
        )
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
