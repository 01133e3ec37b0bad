"""Notifications through Apprise (`notify:` in releasegate.yaml): deploy started, live,
failed, rolled back, refused, FORCED, watch failed, approval needed.

A delivery never fails a run and never holds it longer than its timeout; each one is an
action `notify` in the ledger (a child of the run it is about) with its outcome, naming
its targets by position and scheme only: Apprise URLs are credentials."""

from releasegate.notify.hooks import Notifier, notifier_for

__all__ = ["Notifier", "notifier_for"]
