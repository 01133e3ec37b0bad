"""Where runs meet notifications: the CLI hands the Notifier the engine's events (a run
started) and each finished RunOutcome (after its execution record is written, so the
message can name it). Ledger writes happen here, on the caller's thread only."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from releasegate.notify.deliver import Delivery, Sending, send
from releasegate.notify.message import Notice, outcome_event, render, start_event
from releasegate.notify.targets import Target, configs_for, resolve
from releasegate.redact import SECRET_NAME, Redactor, url_secrets

if TYPE_CHECKING:
    from releasegate.engine.base import RunOutcome
    from releasegate.identity import Actor
    from releasegate.ledger import Ledger
    from releasegate.model import Event
    from releasegate.notify.config import NotifyConfig


@dataclass
class _Pending:
    row: str  # the `notify` action's ledger id
    event: str
    sending: Sending
    # Targets that cannot be delivered (a `url_env` variable not set): failed from the start
    undeliverable: list[Delivery]


def _configs(config: Any, stack: str) -> list[NotifyConfig]:
    """The top-level `notify:` and the stack's own (both apply)."""
    return configs_for(config, stack)


def notifier_for(config: Any, ledger: Ledger, actor: Actor) -> Notifier | None:
    """A Notifier when any `notify:` is configured, else None (Apprise never imported)."""
    if getattr(config, "notify", None) is None and not any(
        getattr(s, "notify", None) is not None for s in getattr(config, "stacks", {}).values()
    ):
        return None
    return Notifier(config, ledger, actor)


class Notifier:
    def __init__(self, config: Any, ledger: Ledger, actor: Actor) -> None:
        self.config = config
        self.ledger = ledger
        self.actor = actor
        self._pending: list[_Pending] = []

    # -- what is sent where ---------------------------------------------------------------------
    def _targets(self, stack: str, event: str) -> tuple[list[Target], float]:
        wanted = [cfg for cfg in _configs(self.config, stack) if cfg.wants(event)]
        timeout = max((cfg.timeout for cfg in wanted), default=0.0)
        return resolve(wanted, os.environ), timeout

    def _redactor(self, stack: str) -> Redactor:
        """The stack's secrets (as its commands see them) and every notify URL's parts
        (those read from the environment too)."""
        secrets: list[str] = []
        for target in resolve(_configs(self.config, stack), os.environ):
            if target.url is not None:
                secrets += [target.url, *url_secrets(target.url)]
        env_vars = getattr(self._stack(stack), "env_vars", {})
        for env in (os.environ, env_vars):
            secrets += [str(v) for k, v in env.items() if SECRET_NAME.search(str(k))]
        return Redactor(secrets)

    def _stack(self, name: str) -> Any:
        return getattr(self.config, "stacks", {}).get(name)

    # -- hooks ------------------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """An engine event: a deploy that starts is announced (without waiting for it)."""
        self._reap(block=False)
        if event.kind != "run_started" or event.data.get("action") != "deploy":
            return
        stack = self._stack(event.stack)
        if stack is None:
            return
        forced = bool(event.data.get("forced"))
        notice = Notice(
            event=start_event(forced=forced),
            action="deploy",
            stack=event.stack,
            env=str(stack.env),
            version=str(event.data.get("version") or ""),
            user=self.actor.user,
            outcome="running",
            message=event.message + (f"; reason: {event.data.get('reason')}" if forced else ""),
            action_id=str(event.data.get("action_id") or ""),
            forced=forced,
        )
        self.notify(notice)

    def finished(self, out: RunOutcome) -> list[Delivery]:
        """A run's outcome (its record written): announce it, then wait (within each
        delivery's timeout) for every delivery of this run and record them."""
        watch = out.details.get("watch")
        event = outcome_event(
            out.action,
            out.status,
            watch_failed=isinstance(watch, dict) and watch.get("outcome") == "failed",
        )
        if event is not None:
            self.notify(
                Notice(
                    event=event,
                    action=out.action,
                    stack=out.stack,
                    env=out.env,
                    version=out.version,
                    user=self.actor.user,
                    outcome=out.status,
                    message=out.message,
                    record=str(out.record_path or ""),
                    action_id=out.action_id,
                    forced=bool(out.plan is not None and out.plan.forced),
                )
            )
        return self._reap(block=True)

    def notify(self, notice: Notice) -> None:
        """Record a `notify` action, then start delivering (not waiting)."""
        targets, timeout = self._targets(notice.stack, notice.event)
        if not targets:
            return
        title, body = render(notice, self._redactor(notice.stack))
        row = self.ledger.begin_action(
            stack=notice.stack,
            env=notice.env,
            action="notify",
            version=notice.version,
            parent_id=notice.action_id or None,
            notes=f"{notice.event}: {len(targets)} target(s)",
            details={"event": notice.event, "timeout_s": timeout},
            user=self.actor.user,
            host=self.actor.host,
            pid=self.actor.pid,
        )
        ready = [t for t in targets if t.url is not None]
        sending = send(
            [t.url for t in ready if t.url is not None], title, body, timeout=timeout,
            names=[t.name for t in ready],
        )  # fmt: skip
        undeliverable = [Delivery(t.name, False, t.problem) for t in targets if t.url is None]
        self._pending.append(_Pending(row, notice.event, sending, undeliverable))

    def _reap(self, *, block: bool) -> list[Delivery]:
        """Close the ledger rows of deliveries that are done (all of them when `block`:
        each waits at most until its own deadline)."""
        done: list[Delivery] = []
        still: list[_Pending] = []
        for item in self._pending:
            if not block and not item.sending.done():
                still.append(item)
                continue
            results = sorted(
                item.sending.wait() + item.undeliverable,
                key=lambda d: int(d.target[1:].split(" ", 1)[0]),
            )
            failed = [r for r in results if not r.ok]
            summary = (
                f"{item.event}: delivered to {len(results)} target(s)"
                if not failed
                else f"{item.event}: {len(failed)} of {len(results)} target(s) failed: "
                + "; ".join(f"{r.target}: {r.detail}" for r in failed)
            )
            self.ledger.end_action(
                item.row,
                "fail" if failed else "success",
                notes=summary[:500],
                details={"targets": [r.as_dict() for r in results]},
            )
            done += results
        self._pending = still
        return done


def notify_approval_needed(
    config: Any,
    ledger: Ledger,
    actor: Actor,
    *,
    change_id: str,
    title: str,
    risk: str,
    why: str,
    path: str,
    stack: str = "changes",
    env: str = "-",
) -> list[Delivery]:
    """A change record that waits for approvals (created, or refused at `change run`):
    the top-level `notify:` (and `stack`'s, for `change run --stack`), waited for here."""
    notifier = notifier_for(config, ledger, actor)
    if notifier is None:
        return []
    notifier.notify(
        Notice(
            event="approval_needed",
            action="change",
            stack=stack,
            env=env,
            version=change_id,
            user=actor.user,
            outcome=f"{risk} risk: {why}",
            message=title,
            record=path,
        )
    )
    return notifier._reap(block=True)
