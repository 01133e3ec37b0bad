"""The watch window's verdicts, pure: counts and answers in, a CheckResult out (what the
ledger and the execution record keep as evidence). Access-log lines are counted by the one
parser, releasegate.proxy.accesslog."""

from __future__ import annotations

import math
from typing import Any

from releasegate.model import CheckResult

MAX_SAMPLE = 200


def share_verdict(total: int, errors: int, *, max_share: float, min_requests: int) -> CheckResult:
    evidence = {"requests": total, "5xx": errors, "max_share": max_share}
    if total < min_requests:
        return CheckResult(
            "access-log",
            True,
            f"{errors} 5xx of {total} request(s): fewer than {min_requests}, no verdict yet",
            evidence,
        )
    share = errors / total
    ok = share <= max_share
    return CheckResult(
        "access-log",
        ok,
        f"5xx share {share:.1%} of {total} request(s) since the switch"
        + ("" if ok else f", above {max_share:.1%}"),
        {**evidence, "share": round(share, 4)},
    )


def log_verdict(matches: int, samples: list[str], *, pattern: str, max_matches: int) -> CheckResult:
    ok = matches <= max_matches
    summary = f"{matches} line(s) matching {pattern!r} since the switch"
    if not ok:
        summary += f" (more than {max_matches}): {samples[0][:MAX_SAMPLE]}" if samples else ""
    return CheckResult(
        "log",
        ok,
        summary,
        {"matches": matches, "max_matches": max_matches, "samples": samples[:3]},
    )


def prometheus_verdict(answer: Any, *, low: float | None, high: float | None) -> CheckResult:
    """An /api/v1/query answer (vector or scalar) held against its bounds. An answer that
    is not one, or holds no sample, fails: a query that proves nothing is no proof."""
    if not isinstance(answer, dict) or answer.get("status") != "success":
        why = answer.get("error") if isinstance(answer, dict) else None
        return CheckResult("prometheus", False, f"query failed: {str(why or 'no answer')[:200]}")
    data = answer.get("data")
    kind = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    values: list[float] = []
    try:
        if kind == "scalar" and isinstance(result, list) and len(result) == 2:
            values = [float(result[1])]
        elif kind == "vector" and isinstance(result, list):
            values = [float(s["value"][1]) for s in result[:1000] if isinstance(s, dict)]
        else:
            return CheckResult("prometheus", False, f"unexpected result type {kind!r}")
    except (KeyError, IndexError, TypeError, ValueError):
        return CheckResult("prometheus", False, "a sample without a number")
    if not values:
        return CheckResult("prometheus", False, "the query returned no sample")
    bad = [
        v
        for v in values
        if math.isnan(v) or (high is not None and v > high) or (low is not None and v < low)
    ]
    shown = ", ".join(f"{v:g}" for v in values[:5])
    bounds = " and ".join(
        b
        for b in (
            f">= {low:g}" if low is not None else "",
            f"<= {high:g}" if high is not None else "",
        )
        if b
    )
    evidence = {"values": values[:20], "min": low, "max": high}
    if bad:
        return CheckResult("prometheus", False, f"value {bad[0]:g} is not {bounds}", evidence)
    return CheckResult("prometheus", True, f"value(s) {shown}: {bounds}", evidence)


def round_verdict(checks: list[CheckResult]) -> tuple[bool, str]:
    """One round: every check must pass; the summary names those that did not."""
    bad = [c for c in checks if not c.ok]
    if not bad:
        return True, "; ".join(c.summary for c in checks) or "no checks"
    return False, "; ".join(f"{c.name}: {c.summary}" for c in bad)
