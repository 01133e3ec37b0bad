"""The seed's plain-text formats: deploy-history.log lines and the verified/ folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from releasegate.errors import BadInput
from releasegate.model import ActionRecord

if TYPE_CHECKING:
    from pathlib import Path

    from releasegate.ledger.store import Ledger

_FIELD_TRANSLATION = str.maketrans({"\r": " ", "\n": " ", "|": "/"})


def _field(value: str) -> str:
    # One action is one line, and '|' only ever separates fields.
    return value.replace("\r\n", " ").translate(_FIELD_TRANSLATION)


def _line(when: datetime, fields: Sequence[str], notes: str, tz: tzinfo | None) -> str:
    local = when.astimezone(tz).isoformat(" ", "seconds")[:19]  # faster than strftime
    joined = "".join(fields)
    if "|" in joined or "\n" in joined or "\r" in joined:  # never for validated names
        fields = [_field(f) for f in fields]
    line = f"{local} | {' | '.join(fields)} |"
    notes = _field(notes).strip() if notes else ""
    return f"{line} {notes}" if notes else line


def shown_notes(notes: str, forced: bool, reason: str) -> str:
    """The notes as history shows them: a forced action says FORCED whatever its outcome.

    The open row's notes carry ``FORCED: reason``, but a run that fails or is refused closes
    with notes of its own, which would hide that it was forced (`grep "| FORCED"`)."""
    if not forced or "FORCED" in notes:
        return notes
    head = f"FORCED: {reason}" if reason else "FORCED"
    return f"{head}; {notes}" if notes else head


def format_log_line(rec: ActionRecord, tz: tzinfo | None = None) -> str:
    """``YYYY-MM-DD HH:MM:SS | stack | env | action | version | status | notes``.

    The start time is shown in local time (or ``tz``). With empty notes the line ends
    in ``| status |``, exactly like the seed's deploy-history.log.
    """
    fields = (rec.stack, rec.env, rec.action, rec.version, rec.status)
    return _line(rec.started_at, fields, shown_notes(rec.notes, rec.forced, rec.reason), tz)


def format_log_row(row: Sequence[Any], tz: tzinfo | None = None) -> str:
    """format_log_line for a Ledger.log_rows() tuple: the same line, without an ActionRecord."""
    ts, *fields, notes, forced, reason = row
    return _line(datetime.fromisoformat(ts), fields, shown_notes(notes, bool(forced), reason), tz)


def export_verified(ledger: Ledger, directory: Path) -> list[Path]:
    """Write ``<directory>/<stack>.txt`` = verified version + newline, for every stack.

    Each file is replaced atomically (temp file in the same folder, fsync, os.replace),
    so a reader never sees a half-written version.
    """
    # Imported here: `history` needs format_log_line, and startup time is budgeted.
    import tempfile

    from releasegate import names

    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for stack, (version, _when) in sorted(ledger.verified_all().items()):
        if not names.is_valid("stack", stack):
            # The stack name becomes a file name: never let it escape the folder.
            raise BadInput(f"ledger holds a verified stack with an unsafe name: {stack!r}")
        target = directory / f"{stack}.txt"
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{stack}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f"{version}\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; the seed's files are world-readable
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        written.append(target)
    return written
