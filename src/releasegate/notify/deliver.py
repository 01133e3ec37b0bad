"""Deliver one message to Apprise URLs, each in its own daemon thread, bounded by one
deadline: a target that hangs is reported as timed out and left behind (a daemon thread
never holds the process at exit). Nothing here raises: every outcome is a Delivery."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from releasegate.redact import Redactor, url_secrets

MAX_DETAIL = 300


@dataclass(frozen=True)
class Delivery:
    """One target's outcome. `target` names it without its secret: "#2 mailto"."""

    target: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"target": self.target, "ok": self.ok, "detail": self.detail}


def target_name(index: int, url: str) -> str:
    """How a target is shown: its position and scheme only (the rest may be a token)."""
    scheme = url.partition("://")[0].lower()
    return f"#{index + 1} {scheme if scheme.isalnum() else '?'}"


class _ThreadLog(logging.Handler):
    """Apprise says why a delivery failed only in its log: keep each thread's last warning."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: dict[int, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread is not None:
            try:
                self.last[record.thread] = record.getMessage()[:1000]
            except Exception:  # a bad log call must not break a delivery
                self.last[record.thread] = record.msg if isinstance(record.msg, str) else "?"


class Sending:
    """Deliveries under way; `wait()` collects them within the deadline given at start."""

    def __init__(
        self,
        urls: Sequence[str],
        title: str,
        body: str,
        timeout: float,
        names: Sequence[str] | None = None,
    ) -> None:
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self._targets = (
            list(names) if names is not None else [target_name(i, u) for i, u in enumerate(urls)]
        )
        self._results: dict[int, Delivery] = {}
        self._redact = Redactor([s for u in urls for s in (u, *url_secrets(u))])
        self._log = _ThreadLog()
        logger = logging.getLogger("apprise")
        logger.addHandler(self._log)
        self._threads = [
            threading.Thread(
                target=self._one,
                args=(i, url, title, body),
                name=f"releasegate-notify-{i}",
                daemon=True,
            )
            for i, url in enumerate(urls)
        ]
        for thread in self._threads:
            thread.start()

    def _one(self, index: int, url: str, title: str, body: str) -> None:
        name = self._targets[index]
        try:
            import apprise

            asset = apprise.AppriseAsset(
                storage_mode=apprise.PersistentStoreMode.MEMORY,
                service_timeout=max(1.0, self.timeout),
            )
            asset.pgp_autogen = False  # never write keys to disk for a mail
            asset.pem_autogen = False
            target = apprise.Apprise(asset=asset)
            if not target.add(url):
                self._results[index] = Delivery(name, False, "not a URL Apprise knows")
                return
            # Each plugin on this thread (Apprise's own notify() may hand it to another),
            # so the log lines of this thread say why it failed.
            ok = all(bool(plugin.notify(body=body, title=title)) for plugin in target)
            why = "" if ok else self._log.last.get(threading.get_ident(), "not delivered")
            self._results[index] = Delivery(name, ok, "delivered" if ok else self._clean(why))
        except Exception as exc:  # a failed delivery is an outcome, not a crash
            self._results[index] = Delivery(
                name, False, self._clean(f"{type(exc).__name__}: {exc}")
            )

    def _clean(self, text: str) -> str:
        return self._redact(text)[:MAX_DETAIL]

    def done(self) -> bool:
        """Every target answered, or the deadline passed."""
        return time.monotonic() >= self.deadline or not any(t.is_alive() for t in self._threads)

    def wait(self) -> list[Delivery]:
        """Each target's outcome; one still running at the deadline is reported timed out."""
        for thread in self._threads:
            thread.join(max(0.0, self.deadline - time.monotonic()))
        logging.getLogger("apprise").removeHandler(self._log)
        return [
            self._results.get(i)
            or Delivery(name, False, f"timed out after {self.timeout:g}s (left behind)")
            for i, name in enumerate(self._targets)
        ]


def send(
    urls: Sequence[str],
    title: str,
    body: str,
    *,
    timeout: float,
    names: Sequence[str] | None = None,
) -> Sending:
    """Start delivering to every URL now; `.wait()` for the outcomes. `names`: how each
    target is shown (default: its position and scheme)."""
    if names is not None and len(names) != len(urls):
        raise ValueError("one name per URL")
    return Sending(urls, title, body, timeout, names)
