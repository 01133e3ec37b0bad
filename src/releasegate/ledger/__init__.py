"""The ledger: append-only, tamper-evident record of every action and its outcome."""

from releasegate.ledger.export import export_verified, format_log_line, format_log_row, shown_notes
from releasegate.ledger.store import ActionFilter, Ledger

__all__ = [
    "ActionFilter",
    "Ledger",
    "export_verified",
    "format_log_line",
    "format_log_row",
    "shown_notes",
]
