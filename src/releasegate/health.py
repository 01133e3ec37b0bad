"""Is what runs still there and answering? Two checks for `status` and `stacks`:

- a releases stack whose `current` points at a release directory that is gone (deleted by
  hand, a full clean-up, a restore of the run directory): the app runs from a deleted
  folder, or not at all, and the next restart fails;
- a stack whose health URL does not answer (or answers an error).

Each check is a program of operations (releasegate/ops.py), so the executor runs it on one
host or many like any other phase (StackHosts.health_flags, for status and stacks).
Nothing here prints: each flag is a sentence for the CLI to render."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from releasegate.ops import Get, HttpReply, Program, cmd
from releasegate.redact import mask_url
from releasegate.runtimes import releases_commands as rc
from releasegate.transport.base import CommandResult

PROBE_TIMEOUT = 3.0  # seconds: status must stay quick when an app hangs


@dataclass(frozen=True)
class HealthFlag:
    kind: str  # "release-gone" | "health-no-answer" | "health-bad-status"
    message: str


@dataclass(frozen=True)
class HealthProbe:
    """What to GET and what answer is healthy."""

    url: str
    expect_status: int | None  # None: any status below 400


def current_release_ops(root: PurePosixPath) -> Program[HealthFlag | None]:
    """A flag when `<root>/current` points at a release directory that is not there."""
    link: CommandResult = yield cmd(rc.read_current(root), timeout=30)
    target = link.stdout.strip()
    if not link.ok or not target:
        return None  # nothing deployed yet (or not a symlink): not this check's business
    there: CommandResult = yield cmd(["test", "-d", str(root / "current")], timeout=30)
    if there.ok:
        return None
    return HealthFlag(
        "release-gone",
        f"current points at {target}, which is gone: the app runs from a deleted release "
        "(or not at all); deploy or roll back to bring a release back",
    )


def health_probe(stack: Any, running: str | None = None) -> HealthProbe | None:
    """The stack's health URL: `compose.health_url`, else its first HTTP smoke check (with
    that check's expected status). None when it has neither, or when the URL names each
    host (`{host}`): a fleet's URLs are probed per host by the executor."""
    compose = getattr(stack, "compose", None) if stack.runtime == "compose" else None
    url: str | None = getattr(compose, "health_url", None) if compose else None
    expect: int | None = None
    if not url:
        check = next((c for c in stack.smoke if getattr(c, "http", None)), None)
        if check is None:
            return None
        url, expect = str(check.http), int(check.expect_status)
    if "{host}" in url:
        return None
    if "{version}" in url:
        if running is None:
            return None
        url = url.replace("{version}", running)
    return HealthProbe(str(url), expect)


def probe_ops(probe: HealthProbe, timeout: float = PROBE_TIMEOUT) -> Program[HealthFlag | None]:
    """One GET, no retries: a flag when there is no answer or an unhealthy one."""
    reply: HttpReply = yield Get(probe.url, timeout)
    shown = mask_url(probe.url)  # a health URL may carry credentials
    if reply.status is None:
        return HealthFlag(
            "health-no-answer", f"health check {shown} does not answer ({reply.error})"
        )
    if probe.expect_status is not None and reply.status != probe.expect_status:
        return HealthFlag(
            "health-bad-status",
            f"health check {shown} answers {reply.status} (expected {probe.expect_status})",
        )
    if probe.expect_status is None and reply.status >= 400:
        return HealthFlag("health-bad-status", f"health check {shown} answers {reply.status}")
    return None


def stack_flags_ops(stack: Any, running: str | None) -> Program[list[HealthFlag]]:
    """Both checks for one stack on one host, in one program."""
    flags: list[HealthFlag] = []
    if stack.runtime == "releases":
        gone = yield from current_release_ops(PurePosixPath(str(stack.dir)))
        if gone is not None:
            flags.append(gone)
    # Nothing running: nothing to answer (a stack never deployed is not unhealthy).
    probe = health_probe(stack, running) if running is not None else None
    if probe is not None:
        bad = yield from probe_ops(probe)
        if bad is not None:
            flags.append(bad)
    return flags
