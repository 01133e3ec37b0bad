"""The watch window's loop: a round of checks every `interval` until `duration` is over,
a check fails, or someone accepts the release early. Time, sleep and each check are
passed in, so the loop is tested as data; every read in a round is bounded."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasegate.model import CheckResult
from releasegate.watch.logs import LogTail
from releasegate.watch.verdicts import (
    count_statuses,
    log_verdict,
    prometheus_verdict,
    round_verdict,
    share_verdict,
)

if TYPE_CHECKING:
    from releasegate.watch.config import PrometheusCheck, WatchConfig

MAX_SAMPLES = 3


@dataclass
class WindowResult:
    outcome: str  # passed | failed | accepted
    summary: str
    checks: list[CheckResult]  # the last round's
    rounds: int
    accepted_by: str = ""


@dataclass
class Checks:
    """One window's checks and what they have counted since the switch."""

    config: WatchConfig
    offsets: dict[str, int]  # log path -> its size just before the switch
    smoke: Callable[[], CheckResult] | None = None
    query: Callable[[PrometheusCheck], Any] | None = None  # the decoded /api/v1/query answer
    redact: Callable[[str], str] = str
    requests: int = 0
    errors: int = 0
    matches: int = 0
    samples: list[str] = field(default_factory=list)
    _tails: dict[str, LogTail] = field(default_factory=dict)

    def _tail(self, path: Path) -> LogTail:
        key = str(path)
        if key not in self._tails:
            self._tails[key] = LogTail(path, self.offsets.get(key, 0))
        return self._tails[key]

    def round(self) -> list[CheckResult]:
        cfg = self.config
        found: list[CheckResult] = []
        if cfg.log is not None:
            pattern = re.compile(cfg.log.pattern.encode())
            for line in self._tail(cfg.log.path).read(cfg.max_read_bytes):
                if pattern.search(line):
                    self.matches += 1
                    if len(self.samples) < MAX_SAMPLES:
                        text = line.decode("utf-8", "replace").strip()
                        self.samples.append(self.redact(text)[:200])
            found.append(
                log_verdict(
                    self.matches,
                    self.samples,
                    pattern=cfg.log.pattern,
                    max_matches=cfg.log.max_matches,
                )
            )
        if cfg.access_log is not None:
            a = cfg.access_log
            total, errors = count_statuses(self._tail(a.path).read(cfg.max_read_bytes))
            self.requests += total
            self.errors += errors
            found.append(
                share_verdict(
                    self.requests,
                    self.errors,
                    max_share=a.max_5xx_share,
                    min_requests=a.min_requests,
                )
            )
        if cfg.prometheus is not None and self.query is not None:
            p = cfg.prometheus
            try:
                found.append(prometheus_verdict(self.query(p), low=p.min, high=p.max))
            except Exception as exc:  # unreachable, a timeout, not JSON: no proof either
                why = self.redact(f"{type(exc).__name__}: {exc}")[:200]
                found.append(CheckResult("prometheus", False, f"query failed: {why}"))
        if self.smoke is not None:
            found.append(self.smoke())
        return found

    def evidence(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "5xx": self.errors,
            "log_matches": self.matches,
            "samples": self.samples,
            "offsets": {p: t.offset for p, t in self._tails.items()},
            "rotated": {p: t.rotated for p, t in self._tails.items() if t.rotated},
        }


def run_window(
    checks: Callable[[], list[CheckResult]],
    *,
    duration: float,
    interval: float,
    accepted: Callable[[], str | None],
    on_round: Callable[[int, bool, str], None] = lambda _n, _ok, _s: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WindowResult:
    """Rounds from now until `duration` is over (a last round at the end), the first
    failing round, or an acceptance (asked between rounds)."""
    end = clock() + duration
    rounds = 0
    while True:
        who = accepted() if rounds else None
        if who:
            return WindowResult("accepted", f"accepted early by {who}", [], rounds, who)
        found = checks()
        rounds += 1
        ok, summary = round_verdict(found)
        on_round(rounds, ok, summary)
        if not ok:
            return WindowResult("failed", summary, found, rounds)
        left = end - clock()
        if left <= 0:
            return WindowResult(
                "passed", f"{rounds} round(s) over {duration:g}s passed: {summary}", found, rounds
            )
        sleep(min(interval, left))


def prometheus_query(check: PrometheusCheck) -> Any:
    """GET /api/v1/query, bounded in time (one deadline) and bytes; the decoded JSON."""
    from urllib.parse import urlencode

    from releasegate.httpget import get_sync, make_client

    url = check.url.rstrip("/") + "/api/v1/query?" + urlencode({"query": check.query})
    with make_client(url.startswith("https:")) as client:
        answer = get_sync(client, url, check.timeout, check.max_body_bytes)
    if answer.truncated:
        raise ValueError(f"answer longer than {check.max_body_bytes} bytes")
    return json.loads(answer.text)
