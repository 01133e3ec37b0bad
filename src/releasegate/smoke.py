"""Smoke checks: does the version that was just switched to actually answer?

Each check retries within its own overall time budget, and every attempt is kept
as evidence (status, latency, a bounded excerpt of the answer, or the error).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from releasegate.model import CheckResult
from releasegate.ops import DEFAULT_MAX_BODY, Get, HttpReply, Program, Sleep, cmd, run_sync
from releasegate.redact import Redactor, mask_url, url_secrets
from releasegate.transport.base import CommandResult

if TYPE_CHECKING:
    import threading

    import httpx

    from releasegate.transport import Transport

EXCERPT = 300


def run_checks(
    checks: list[Any],
    *,
    version: str,
    transport: Transport,
    cwd: Path | None,
    env: Mapping[str, str],
    redact: Redactor,
    on_result: Callable[[CheckResult], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clients: HttpClientSource | None = None,
) -> list[CheckResult]:
    """Run every check (not stopping at the first failure: the evidence is wanted whole).

    `clients` may hold an HTTP client built ahead of time (see HttpClientSource.warm);
    without it one is built here and closed at the end.
    """
    results = []
    own = clients is None
    source = clients or HttpClientSource()
    try:
        for check in checks:
            started = time.monotonic()
            program = check_program(check, version=version, cwd=cwd, env=env, redact=redact)
            result = run_sync(program, transport, http=source, sleep=sleep)
            # The check's own time, retries included: what a deploy spends waiting on the service.
            result.evidence.setdefault("duration_s", round(time.monotonic() - started, 3))
            results.append(result)
            if on_result:
                on_result(result)
    finally:
        if own:
            source.close()
    return results


@dataclass(frozen=True)
class _Url:
    http: str


def _needs_tls(checks: Iterable[Any]) -> bool:
    return any(str(getattr(c, "http", "") or "").startswith("https:") for c in checks)


def _make_client(tls: bool) -> httpx.Client:
    from releasegate.httpget import make_client  # imports httpx (cheaply: load_httpx)

    return make_client(tls)


class HttpClientSource:
    """The HTTP client for a run's smoke checks, optionally built ahead of time.

    Importing httpx and building a client costs 100-200 ms. `warm` does it on a thread
    while the deploy's earlier steps wait on the team's commands, so the smoke step does
    not pay for it.
    """

    def __init__(self) -> None:
        self._client: httpx.Client | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._tls = False

    def warm(self, checks: Iterable[Any]) -> None:
        checks = list(checks)
        if self._thread or self._client or not any(getattr(c, "http", None) for c in checks):
            return
        import atexit
        import threading

        tls = self._tls = _needs_tls(checks)
        self._thread = threading.Thread(
            target=self._build, args=(tls,), name="releasegate-http-warmup", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)  # never leave the thread mid-import at exit

    def _build(self, tls: bool) -> None:
        try:
            self._client = _make_client(tls)
        except BaseException as exc:  # handed to the caller of get()
            self._error = exc

    def get(self, checks: Iterable[Any]) -> httpx.Client:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            if self._error is not None:
                error, self._error = self._error, None
                raise error
        tls = _needs_tls(checks)
        if self._client is not None and tls and not self._tls:
            self._client.close()  # built for plain http only; these checks need TLS
            self._client = None
        if self._client is None:
            self._client, self._tls = _make_client(tls), tls
        return self._client

    def client_for(self, url: str) -> httpx.Client:
        return self.get([_Url(url)])

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None


def _expand(template: str | None, version: str) -> str | None:
    return None if template is None else template.replace("{version}", version)


def check_program(check: Any, *, version: str, **kw: Any) -> Program[CheckResult]:
    """The check as a program of operations (see releasegate.ops): HTTP checks GET from the
    controller, command checks run on the host. `url` overrides an HTTP check's URL (a
    fleet puts each host's address in it)."""
    if getattr(check, "http", None):
        return http_check(check, version=version, url=kw.get("url"))
    return command_check(
        check, version=version, cwd=kw.get("cwd"), env=kw.get("env", {}), redact=kw["redact"]
    )


def http_check(check: Any, *, version: str, url: str | None = None) -> Program[CheckResult]:
    """GET the check's URL until it answers as expected or its time is up. The URL is only
    ever shown masked (mask_url), and what it hides is masked in the answer and errors too."""
    url = url or check.http
    shown = mask_url(url)
    redact = Redactor(url_secrets(url))
    max_body = getattr(check, "max_body_bytes", None) or DEFAULT_MAX_BODY
    contains = _expand(check.body_contains, version)
    pattern = _expand(check.body_matches, version)
    regex = re.compile(pattern) if pattern else None
    deadline = time.monotonic() + check.timeout
    attempts: list[dict[str, Any]] = []
    for attempt in range(check.retries + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        record: dict[str, Any] = {"attempt": attempt + 1}
        reply: HttpReply = yield Get(url, remaining, max_body)
        problems = []
        if reply.error is not None:
            record["error"] = redact(reply.error)
            problems = [record["error"]]
        else:
            body = reply.text
            record.update(
                status=reply.status,
                latency_ms=round(reply.latency_ms, 1),
                body=redact(body[:EXCERPT]),
            )
            if reply.truncated:
                record["body_truncated_at"] = max_body
            # Matched against the first max_body bytes only (see max_body_bytes).
            within = f" (in its first {max_body} bytes)" if reply.truncated else ""
            if reply.status != check.expect_status:
                problems.append(f"status {reply.status}, expected {check.expect_status}")
            if contains is not None and contains not in body:
                problems.append(f"body does not contain {contains!r}{within}")
            if regex is not None and not regex.search(body):
                problems.append(f"body does not match /{regex.pattern}/{within}")
            if check.latency_ms is not None and reply.latency_ms > check.latency_ms:
                problems.append(f"took {reply.latency_ms:.0f} ms, budget {check.latency_ms} ms")
        record["ok"] = not problems
        if problems:
            record["problems"] = problems
        attempts.append(record)
        if not problems:
            return CheckResult(
                check.name,
                True,
                f"GET {shown} -> {record['status']} in "
                f"{record['latency_ms']:.0f} ms (attempt {attempt + 1})",
                {"url": shown, "attempts": attempts},
            )
        if attempt < check.retries:
            yield Sleep(max(0.0, min(check.interval, deadline - time.monotonic())))
    last = attempts[-1]["problems"][0] if attempts else "no attempt fit in the time budget"
    return CheckResult(
        check.name,
        False,
        f"GET {shown} failed after {len(attempts)} attempt(s): {last}",
        {"url": shown, "attempts": attempts},
        hint="look at the service's logs; the check's url, expect_status and body_* keys "
        "say what was expected",
    )


def command_check(
    check: Any,
    *,
    version: str,
    cwd: PurePosixPath | Path | None,
    env: Mapping[str, str],
    redact: Redactor,
) -> Program[CheckResult]:
    argv = check.command.argv()
    expect = _expand(check.expect_output, version)
    deadline = time.monotonic() + check.timeout
    attempts: list[dict[str, Any]] = []
    where = PurePosixPath(str(cwd)) if cwd is not None else None
    for attempt in range(check.retries + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        result: CommandResult = yield cmd(argv, cwd=where, env=env, timeout=remaining)
        problems = []
        if not result.ok:
            problems.append(result.describe())
        if expect is not None and expect not in result.stdout:
            problems.append(f"output does not contain {expect!r}")
        attempts.append(
            {
                "attempt": attempt + 1,
                "exit_code": result.exit_code,
                "duration_s": round(result.duration_s, 3),
                "output": redact(result.stdout[-EXCERPT:] + result.stderr[-EXCERPT:]),
                "ok": not problems,
                **({"problems": problems} if problems else {}),
            }
        )
        if not problems:
            return CheckResult(
                check.name,
                True,
                f"command passed (attempt {attempt + 1})",
                {"argv": [redact(a) for a in argv], "attempts": attempts},
            )
        if attempt < check.retries:
            yield Sleep(max(0.0, min(check.interval, deadline - time.monotonic())))
    last = attempts[-1]["problems"][0] if attempts else "no attempt fit in the time budget"
    return CheckResult(
        check.name,
        False,
        f"command failed after {len(attempts)} attempt(s): {last}",
        {"argv": [redact(a) for a in argv], "attempts": attempts},
    )
