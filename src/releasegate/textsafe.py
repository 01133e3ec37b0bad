"""Recorded free text made harmless to show: every control character but newline and tab
written as an escape (`\\x1b`), so a reason holding `ESC ] 0 ; ... BEL` cannot retitle the
reader's terminal, `ESC [ 2 J` clear it, a carriage return overprint a line or a bidi
override reorder what is seen. Used by the command line (cli/term.py) for everything it
prints, and by the execution records (Markdown that people `cat`).
"""

from __future__ import annotations

import re

# C0 but newline and tab, DEL, C1; the bidi embeddings, overrides and isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# For JSON output: json.dumps escapes C0 itself; with ensure_ascii=False, not the rest.
_JSON_EXTRA = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character but newline and tab shown as an escape."""
    return _CONTROL.sub(_escaped, text) if _CONTROL.search(text) else text


def json_printable(line: str) -> str:
    """A JSON text with the controls json.dumps leaves raw written as \\u escapes."""
    return _JSON_EXTRA.sub(lambda m: f"\\u{ord(m[0]):04x}", line)
