"""`notify:` in releasegate.yaml: Apprise URLs (at the top level for every stack, and per
stack, adding to them), a delivery timeout and which events are sent.

Apprise URLs carry credentials (tokens, SMTP passwords), so they are SecretStr: their
repr is masked, and nothing outside releasegate.notify ever sees them in clear."""

# No `from __future__ import annotations`: pydantic reads the annotations (see values.py).
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr

from releasegate.config.values import StrictModel, fail

EVENTS = (
    "started",
    "live",
    "failed",
    "rolled_back",
    "refused",
    "forced",
    "watch_failed",
    "approval_needed",
)
NotifyEvent = Literal[
    "started",
    "live",
    "failed",
    "rolled_back",
    "refused",
    "forced",
    "watch_failed",
    "approval_needed",
]
MAX_URL_CHARS = 2048


def _apprise_url(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    scheme, sep, rest = text.partition("://")
    # Never quote the value in the message: it is a credential.
    if not sep or not scheme or not rest or not scheme.replace("+", "").isalnum():
        fail("is not an Apprise URL (SCHEME://...), e.g. mailto://..., json://..., slack://...")
    if len(text) > MAX_URL_CHARS or any(c.isspace() or ord(c) < 32 for c in text):
        fail(f"is not an Apprise URL: spaces, controls or more than {MAX_URL_CHARS} characters")
    return value


AppriseUrl = Annotated[SecretStr, AfterValidator(_apprise_url)]


def _unique_events(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        fail("an event is listed twice")
    return values


class NotifyConfig(StrictModel):
    urls: Annotated[list[AppriseUrl], Field(min_length=1, max_length=32)]
    # Seconds a whole delivery may take; past it the deploy goes on and it is recorded.
    timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    # None: every event (EVENTS)
    events: Annotated[list[NotifyEvent], AfterValidator(_unique_events)] | None = None

    def wants(self, event: str) -> bool:
        return self.events is None or event in self.events
