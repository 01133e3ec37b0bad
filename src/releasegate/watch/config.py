"""`watch:` in releasegate.yaml: the window after a release goes live (seed 003 watches the
first minutes, seed 004 the first day), its interval, and what is checked each round. A
failing check sends the release back (the deploy ends ROLLED BACK, exit 4).

Log paths are read on each host of the stack (releasegate.watch.logs): absolute paths on
SSH hosts; a relative path is resolved against releasegate.yaml's folder, as `dir:` is."""

# No `from __future__ import annotations`: pydantic reads the annotations (see values.py).
from typing import Annotated, Self

from pydantic import Field, model_validator

from releasegate.config.values import HttpUrl, Regex, ResolvedPath, StrictModel, fail

MiB = 1024 * 1024


class AccessLogCheck(StrictModel):
    """The share of 5xx answers in an access log since the switch, on each host: nginx's
    and Apache's common or combined lines, HAProxy's httplog, Caddy's JSON (the one parser,
    releasegate.proxy.accesslog)."""

    path: ResolvedPath
    max_5xx_share: Annotated[float, Field(ge=0, le=1)] = 0.05  # above it: fail
    min_requests: Annotated[int, Field(ge=1)] = 20  # fewer requests say nothing yet


class LogCheck(StrictModel):
    """Lines of the app's log written since the switch that match `pattern` (seed 003's
    `grep -i error`)."""

    path: ResolvedPath
    pattern: Regex = "(?i)error"
    max_matches: Annotated[int, Field(ge=0)] = 0  # more than this: fail


class PrometheusCheck(StrictModel):
    """A Prometheus instant query (GET /api/v1/query); each sample's value is held against
    `max` (and `min`)."""

    url: HttpUrl  # the server, e.g. http://127.0.0.1:9090
    query: Annotated[str, Field(min_length=1, max_length=4000)]
    max: float | None = None
    min: float | None = None
    timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    max_body_bytes: Annotated[int, Field(gt=0, le=16 * MiB)] = MiB

    @model_validator(mode="after")
    def _a_bound(self) -> Self:
        if self.max is None and self.min is None:
            fail("needs `max` or `min`: the threshold the query's value is held against")
        return self


class WatchConfig(StrictModel):
    duration: Annotated[float, Field(gt=0, le=7 * 86400)]  # seconds
    interval: Annotated[float, Field(gt=0, le=3600)] = 10.0  # seconds between rounds
    smoke: bool = True  # the stack's smoke checks, every round
    access_log: AccessLogCheck | None = None
    log: LogCheck | None = None
    prometheus: PrometheusCheck | None = None
    # bytes read from each log per round at most (the rest waits for the next round)
    max_read_bytes: Annotated[int, Field(gt=0, le=256 * MiB)] = 4 * MiB

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not (self.smoke or self.access_log or self.log or self.prometheus):
            fail("a window with no check: set smoke, access_log, log or prometheus")
        if self.interval > self.duration:
            fail("interval: longer than the duration: the window would check nothing")
        return self

    def describe(self) -> list[str]:
        """The checks, as the plan and the ledger name them."""
        found = ["smoke checks"] if self.smoke else []
        if self.access_log:
            a = self.access_log
            found.append(
                f"5xx share in {a.path} <= {a.max_5xx_share:g} (from {a.min_requests} requests)"
            )
        if self.log:
            found.append(
                f"lines matching {self.log.pattern!r} in {self.log.path} <= {self.log.max_matches}"
            )
        if self.prometheus:
            p = self.prometheus
            bounds = [
                f">= {p.min:g}" if p.min is not None else "",
                f"<= {p.max:g}" if p.max is not None else "",
            ]
            found.append(f"prometheus {p.query!r} {' and '.join(b for b in bounds if b)}")
        return found
