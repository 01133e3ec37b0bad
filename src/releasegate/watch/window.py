"""The watch window's loop: a round of checks every `interval` until `duration` is over,
a check fails, or someone accepts the release early. Time, sleep and each check are
passed in, so the loop is tested as data; every read in a round is bounded."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from releasegate.execution.hosts import LOCAL
from releasegate.model import CheckResult
from releasegate.proxy.accesslog import count as count_statuses
from releasegate.watch.logs import Tail, Want
from releasegate.watch.verdicts import (
    log_verdict,
    prometheus_verdict,
    round_verdict,
    share_verdict,
)

if TYPE_CHECKING:
    from releasegate.hosttext import HostRange
    from releasegate.watch.config import PrometheusCheck, WatchConfig

MAX_SAMPLES = 3
# Carries out one read program per host (StackHosts.run_programs): for each host the logs
# to read there, back for each host what each log gained.
ReadLogs = Callable[[dict[str, list[Want]]], dict[str, dict[str, "HostRange"]]]


@dataclass
class WindowResult:
    outcome: str  # passed | failed | accepted
    summary: str
    checks: list[CheckResult]  # the last round's
    rounds: int
    accepted_by: str = ""


@dataclass
class HostCounts:
    """What one host's logs showed since the switch."""

    requests: int = 0
    errors: int = 0
    matches: int = 0
    samples: list[str] = field(default_factory=list)


@dataclass
class Checks:
    """One window's checks and what they have counted since the switch, per host."""

    config: WatchConfig
    hosts: list[str]  # whose logs are read (a local stack: ["local"])
    offsets: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> path -> mark
    read_logs: ReadLogs | None = None
    smoke: Callable[[], CheckResult] | None = None
    query: Callable[[PrometheusCheck], Any] | None = None  # the decoded /api/v1/query answer
    redact: Callable[[str], str] = str
    counts: dict[str, HostCounts] = field(default_factory=dict)
    _tails: dict[tuple[str, str], Tail] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(c.requests for c in self.counts.values())

    @property
    def errors(self) -> int:
        return sum(c.errors for c in self.counts.values())

    @property
    def matches(self) -> int:
        return sum(c.matches for c in self.counts.values())

    @property
    def samples(self) -> list[str]:
        many = self._many()
        found = [f"{h}: {s}" if many else s for h, c in self.counts.items() for s in c.samples]
        return found[:MAX_SAMPLES]

    def _many(self) -> bool:
        return self.hosts != [LOCAL]

    def _tail(self, host: str, path: str) -> Tail:
        key = (host, path)
        if key not in self._tails:
            self._tails[key] = Tail.from_mark(path, self.offsets.get(host, {}).get(path))
        return self._tails[key]

    def _read(self) -> None:
        """One read program per host: what each watched log gained since the last round."""
        cfg = self.config
        log = str(cfg.log.path) if cfg.log is not None else None
        access = str(cfg.access_log.path) if cfg.access_log is not None else None
        paths = list(dict.fromkeys(p for p in (log, access) if p is not None))
        if not paths or self.read_logs is None:
            return
        wants = {h: [self._tail(h, p).want() for p in paths] for h in self.hosts}
        got = self.read_logs(wants)
        pattern = re.compile(cfg.log.pattern.encode()) if cfg.log is not None else None
        for host in self.hosts:
            counts = self.counts.setdefault(host, HostCounts())
            for path, answer in got.get(host, {}).items():
                if path not in paths:  # an answer to a question not asked
                    continue
                lines = self._tail(host, path).feed(answer)
                if path == access:
                    total, errors = count_statuses(lines)
                    counts.requests += total
                    counts.errors += errors
                if path == log and pattern is not None:
                    for line in lines:
                        if pattern.search(line):
                            counts.matches += 1
                            if len(counts.samples) < MAX_SAMPLES:
                                text = line.decode("utf-8", "replace").strip()
                                counts.samples.append(self.redact(text)[:200])

    def _judged(
        self, name: str, path: str, one: Callable[[HostCounts], CheckResult], overall: CheckResult
    ) -> CheckResult:
        """Each host's log judged on its own; the result names the hosts that failed (one
        local host: its verdict as it is)."""
        verdicts: dict[str, CheckResult] = {}
        for host in self.hosts:
            tail = self._tail(host, path)
            if tail.error:  # no proof from this host: a check that proves nothing fails
                verdicts[host] = CheckResult(name, False, self.redact(tail.error)[:300])
            else:
                verdicts[host] = one(self.counts.setdefault(host, HostCounts()))
        if not self._many():
            return verdicts[LOCAL]
        bad = [h for h, v in verdicts.items() if not v.ok]
        evidence: dict[str, Any] = {
            "hosts": {h: {"ok": v.ok, **v.evidence} for h, v in verdicts.items()},
            **({"failed_hosts": bad} if bad else {}),
        }
        if bad:
            summary = "; ".join(f"{h}: {verdicts[h].summary}" for h in bad)
            return CheckResult(name, False, summary, evidence)
        return CheckResult(
            name, True, f"{overall.summary} (across {len(verdicts)} hosts)", evidence
        )

    def round(self) -> list[CheckResult]:
        cfg = self.config
        found: list[CheckResult] = []
        self._read()
        if cfg.log is not None:
            c = cfg.log
            found.append(
                self._judged(
                    "log",
                    str(c.path),
                    lambda n: log_verdict(
                        n.matches, n.samples, pattern=c.pattern, max_matches=c.max_matches
                    ),
                    log_verdict(
                        self.matches, self.samples, pattern=c.pattern, max_matches=c.max_matches
                    ),
                )
            )
        if cfg.access_log is not None:
            a = cfg.access_log
            found.append(
                self._judged(
                    "access-log",
                    str(a.path),
                    lambda n: share_verdict(
                        n.requests,
                        n.errors,
                        max_share=a.max_5xx_share,
                        min_requests=a.min_requests,
                    ),
                    share_verdict(
                        self.requests,
                        self.errors,
                        max_share=a.max_5xx_share,
                        min_requests=a.min_requests,
                    ),
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
        hosts: dict[str, Any] = {}
        for (host, path), tail in self._tails.items():
            counts = self.counts.get(host, HostCounts())
            entry = hosts.setdefault(
                host,
                {"requests": counts.requests, "5xx": counts.errors, "log_matches": counts.matches,
                 "logs": {}},
            )  # fmt: skip
            entry["logs"][path] = tail.evidence()
        return {
            "requests": self.requests,
            "5xx": self.errors,
            "log_matches": self.matches,
            "samples": self.samples,
            "hosts": hosts,
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
