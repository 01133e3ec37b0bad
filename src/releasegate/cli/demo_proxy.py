"""The demo's blue/green part: a switch through a real proxy and a watch window that switches
back to the warm slot. Rendered here; the proxy itself is releasegate.demo.proxy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from releasegate.errors import ExitCode, ReleasegateError

if TYPE_CHECKING:
    from releasegate.cli.app import App
    from releasegate.demo.proxy import DemoProxy

MAX_BODY = 64 * 1024


def skipped_line() -> str:
    from releasegate.demo.proxy import INSTALL_HINT

    return (
        "skipped: the blue/green switch and the watch-window rollback: no nginx, HAProxy "
        f"or Caddy on PATH (to see them: {INSTALL_HINT})"
    )


def answer(url: str) -> str:
    """Which version answers at `url` ("v2"), or what came instead ("HTTP 502")."""
    import urllib.error
    import urllib.request

    # Loopback only: no proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as r:
            body = r.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except OSError as exc:
        return f"no answer ({exc.__class__.__name__})"
    try:
        version = json.loads(body).get("version")
    except (ValueError, AttributeError):
        version = None
    return str(version) if isinstance(version, str) else "an answer without a version"


def _slot_pid(root: Path, stack: str, slot: str) -> str:
    try:
        return (root / "srv" / stack / "shared" / f"slot-{slot}.pid").read_text().strip()[:20]
    except OSError:
        return "?"


def proxy_story(app: App, root: Path, proxy: DemoProxy, n: int) -> tuple[list[str], int]:
    """Start the proxy, then three deploys of the blue/green stack; (failures, next step
    number). The caller stops the proxy (try/finally)."""
    from releasegate.demo import proxy as demo_proxy
    from releasegate.workflows.deploy import DeployRequest

    say = app.console.print
    stack, name, url = demo_proxy.STACK, proxy.name, proxy.url + "/health"
    say(f"\n[bold cyan]{n}. {name} found: the demo starts its own in front of two slots"
        "[/bold cyan]")  # fmt: skip
    try:
        demo_proxy.start(proxy)
    except demo_proxy.ProxyStartError as exc:
        from rich.markup import escape

        say(f"[yellow]skipped: {escape(str(exc))}[/yellow]")  # the proxy's own words
        return [], n + 1
    say(
        f"{name} pid {proxy.pid} on 127.0.0.1:{proxy.port} (config and logs in {proxy.dir}); "
        f"slots blue {proxy.slots['blue']}, green {proxy.slots['green']}",
        style="dim",
    )
    failures: list[str] = []
    story: list[tuple[str, str, ExitCode]] = [
        ("v1 goes live on web-blue-green: started in slot blue, smoked, traffic switched",
         "v1", ExitCode.OK),
        ("v2 starts in the free slot, is smoked there, then the traffic switches",
         "v2", ExitCode.OK),
        ("v4 passes its smoke checks but logs errors: its watch window fails and the traffic "
         "switches back to v2, still running in its slot", "v4", ExitCode.ROLLED_BACK),
    ]  # fmt: skip
    for i, (headline, version, expected) in enumerate(story, n + 1):
        say(f"\n[bold cyan]{i}. {headline}[/bold cyan]")
        before = answer(url)
        live_pid = _slot_pid(root, stack, "green")
        say(f"$ releasegate deploy {stack} prod {version}", style="dim")
        try:
            code = app.finish(app.engine().deploy(DeployRequest(stack, "prod", version)))
        except ReleasegateError as exc:
            say(f"[red]{exc.message}[/red]")
            code = int(exc.exit_code)
        after = answer(url)
        say(f"through {name}: {before} before, {after} after", style="dim")
        want = "v2" if version == "v4" else version
        if code != expected or after != want:
            failures.append(
                f"step {i}: exit {code}, {after} through {name}, expected "
                f"{int(expected)} and {want}"
            )
        if version == "v4":
            pid_now = _slot_pid(root, stack, "green")
            same = pid_now == live_pid
            say(
                f"v2 still runs in slot green as pid {pid_now}"
                + (": the same process, nothing restarted" if same else f" (was {live_pid})"),
                style="dim",
            )
            if not same:
                failures.append(f"step {i}: slot green restarted (pid {live_pid} -> {pid_now})")
    return failures, n + 1 + len(story)
