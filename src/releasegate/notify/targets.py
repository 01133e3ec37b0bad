"""Where a notification goes: the `notify:` URLs that apply to a stack, with those named by
`url_env` read from the environment. Pure over the configs and an environment mapping.

A target is shown by its position and scheme (`#2 json`) and, when it comes from the
environment, by the variable's name (`#3 slack from $RELEASEGATE_NOTIFY_SLACK`): never by
its value. A variable that is not set, or holds no Apprise URL, is a target that cannot be
delivered; the reason names the variable only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from releasegate.notify.config import UrlFromEnv, url_problem

if TYPE_CHECKING:
    from releasegate.notify.config import NotifyConfig


@dataclass(frozen=True)
class Target:
    name: str  # "#2 json", "#3 slack from $NAME": nothing secret
    url: str | None  # None: cannot be delivered (see problem)
    problem: str = ""
    env: str | None = None  # the variable it was read from


def configs_for(config: Any, stack: str | None) -> list[NotifyConfig]:
    """The top-level `notify:` and the stack's own (both apply)."""
    found = [getattr(config, "notify", None)]
    stacks = getattr(config, "stacks", {})
    if stack is not None and stack in stacks:
        found.append(getattr(stacks[stack], "notify", None))
    return [c for c in found if c is not None]


def _scheme(url: str) -> str:
    scheme = url.partition("://")[0].lower()
    return scheme if scheme.isalnum() else "?"


def resolve(configs: Iterable[NotifyConfig], env: Mapping[str, str]) -> list[Target]:
    """Every distinct target of `configs` (in order, numbered from 1)."""
    seen: set[str] = set()
    raw: list[tuple[str | None, str | None, str]] = []  # (url, variable, problem)
    for cfg in configs:
        for item in cfg.urls:
            if isinstance(item, UrlFromEnv):
                value = env.get(item.url_env, "").strip()
                if not value:
                    problem = f"the environment variable {item.url_env} is not set"
                    key = "$" + item.url_env
                    url = None
                elif bad := url_problem(value):
                    problem = f"the environment variable {item.url_env} {bad}"
                    key = "$" + item.url_env
                    url = None
                else:
                    problem, key, url = "", value, value
                if key not in seen:
                    seen.add(key)
                    raw.append((url, item.url_env, problem))
            else:
                text = item.get_secret_value()
                if text not in seen:
                    seen.add(text)
                    raw.append((text, None, ""))
    targets = []
    for i, (url, var, problem) in enumerate(raw):
        if var is None:
            assert url is not None
            name = f"#{i + 1} {_scheme(url)}"
        elif url is None:
            name = f"#{i + 1} ${var}"
        else:
            name = f"#{i + 1} {_scheme(url)} from ${var}"
        targets.append(Target(name, url, problem, var))
    return targets


def missing_env(config: Any, stack: str | None, env: Mapping[str, str]) -> list[str]:
    """What `check` and `preflight` say about `stack`'s notification targets that cannot be
    delivered: one line per variable, naming it (never its value)."""
    return [
        f"notify target {t.name}: {t.problem}"
        for t in resolve(configs_for(config, stack), env)
        if t.url is None
    ]
