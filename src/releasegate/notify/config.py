"""`notify:` in releasegate.yaml: Apprise URLs (at the top level for every stack, and per
stack, adding to them), a delivery timeout and which events are sent.

Apprise URLs carry credentials (tokens, SMTP passwords), so they are SecretStr: their
repr is masked, and nothing outside releasegate.notify ever sees them in clear. A URL may
also be named by an environment variable (`- url_env: NAME`, as `password_env` names a
database password), read when a notification is sent: the file then holds no secret."""

# No `from __future__ import annotations`: pydantic reads the annotations (see values.py).
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, SecretStr, Tag

from releasegate.config.values import EnvVarName, StrictModel, fail

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


def url_problem(text: str) -> str:
    """Why `text` is not an Apprise URL ("" when it is one). Never quotes the value: it is
    a credential."""
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme or not rest or not scheme.replace("+", "").isalnum():
        return "is not an Apprise URL (SCHEME://...), e.g. mailto://..., json://..., slack://..."
    if len(text) > MAX_URL_CHARS or any(c.isspace() or ord(c) < 32 for c in text):
        return f"is not an Apprise URL: spaces, controls or more than {MAX_URL_CHARS} characters"
    return ""


def _apprise_url(value: SecretStr) -> SecretStr:
    if problem := url_problem(value.get_secret_value()):
        fail(problem)
    return value


AppriseUrl = Annotated[SecretStr, AfterValidator(_apprise_url)]


class UrlFromEnv(StrictModel):
    """`- url_env: RELEASEGATE_NOTIFY_SLACK`: the URL is that variable's value, read at
    delivery. A variable that is not set does not stop the config from loading: `check`
    and `preflight` name it, and a delivery to it is recorded as failed (by the name)."""

    url_env: EnvVarName


def _url_kind(value: Any) -> str:
    return "env" if isinstance(value, dict | UrlFromEnv) else "url"


# One of the two by its shape, so an error names one problem (not one per branch).
NotifyUrl = Annotated[
    Annotated[AppriseUrl, Tag("url")] | Annotated[UrlFromEnv, Tag("env")],
    Discriminator(_url_kind),
]


def _unique_events(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        fail("an event is listed twice")
    return values


class NotifyConfig(StrictModel):
    urls: Annotated[list[NotifyUrl], Field(min_length=1, max_length=32)]
    # Seconds a whole delivery may take; past it the deploy goes on and it is recorded.
    timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    # None: every event (EVENTS)
    events: Annotated[list[NotifyEvent], AfterValidator(_unique_events)] | None = None

    def wants(self, event: str) -> bool:
        return self.events is None or event in self.events

    def env_names(self) -> list[str]:
        """The environment variables this config's URLs are read from."""
        return [u.url_env for u in self.urls if isinstance(u, UrlFromEnv)]
