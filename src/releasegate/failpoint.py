"""A failpoint for the crash tests: RELEASEGATE_PAUSE_AT=<step> makes a run, right after it
opened that step's ledger row (the first such step only), create RELEASEGATE_PAUSE_FILE (if
set) and wait before the step's work until that file is removed (or 60 s pass), so a test
can signal, kill or starve it at a known step. Unset (always, in production), it costs one
environment lookup per step."""

from __future__ import annotations

import os
import time
from pathlib import Path

LIMIT_S = 60.0
_paused: list[str] = []  # once per process: a rollback's step of the same name goes on


def pause_at(step: str) -> None:
    if os.environ.get("RELEASEGATE_PAUSE_AT") != step or _paused:
        return
    _paused.append(step)
    name = os.environ.get("RELEASEGATE_PAUSE_FILE")
    marker = Path(name) if name else None
    if marker is not None:
        marker.write_text(f"{os.getpid()} {step}\n", encoding="utf-8")
    deadline = time.monotonic() + LIMIT_S
    while time.monotonic() < deadline:  # short sleeps: a signal handler runs between them
        if marker is not None and not marker.exists():
            return
        time.sleep(0.05)
