"""Keep secrets out of the ledger, the logs and the execution records.

Values are redacted by what they are (the values of secret-looking variables that
commands receive) and by shape (credentials in URLs: a userinfo's password, a lone user
name in an http(s) URL, query parameters named like secrets; `password=...` pairs).
`mask_url` shows a URL; `url_secrets` lists the values it hides, to mask them wherever
else they turn up (an answer that echoes its request).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MASK = "***"
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|API_?KEY|PRIVATE|CREDENTIAL|AUTH", re.IGNORECASE)
# The password runs to the last '@' before the path, as URL parsers read it.
_URL_CREDS = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^/?#\s]+)@"
)
# https://<token>@host: a user name alone in an http(s) URL is usually a token.
_URL_USER = re.compile(r"(?P<scheme>\bhttps?://)(?P<user>[^:/@?#\s]+)@", re.IGNORECASE)
_SECRET_PARAM = r"pass|pwd|secret|token|key|auth|sig|credential|session|jwt|otp"  # noqa: S105
SECRET_PARAM = re.compile(_SECRET_PARAM, re.IGNORECASE)
_QUERY = re.compile(
    rf"(?P<key>[?&;#][\w.~%+-]*?(?:{_SECRET_PARAM})[\w.~%+-]*=)(?P<val>[^&#\s'\"<>]*)",
    re.IGNORECASE,
)
_PAIRS = re.compile(
    r"(?P<key>\b[\w.-]*(?:password|passwd|secret|token|api[_-]?key)[\w.-]*\s*[=:]\s*)(?P<val>[^\s'\"&,;]+)",
    re.IGNORECASE,
)
# Short values would mask ordinary words everywhere; they are still caught by shape.
_MIN_LEN = 4


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= _MIN_LEN}, key=len, reverse=True)

    def add(self, *secrets: str) -> None:
        """More values to mask from now on (a secret flag's new value)."""
        kept = {*self._secrets, *(s for s in secrets if len(s) >= _MIN_LEN)}
        self._secrets = sorted(kept, key=len, reverse=True)

    @classmethod
    def from_env(cls, *envs: Mapping[str, str]) -> Redactor:
        values = [v for env in envs for k, v in env.items() if SECRET_NAME.search(k)]
        return cls(values)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return mask_shapes(text)


def mask_shapes(text: str) -> str:
    """Credentials found by their shape alone: in URLs, and `password=...` pairs."""
    if "://" in text:
        text = _URL_CREDS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
        text = _URL_USER.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    if "=" in text:
        text = _QUERY.sub(lambda m: f"{m['key']}{MASK}" if m["val"] else m[0], text)
    return _PAIRS.sub(lambda m: f"{m['key']}{MASK}", text)


def mask_url(url: str) -> str:
    """The URL as it may be shown: passwords, tokens and secret query values as ***."""
    return mask_shapes(url)


def url_secrets(url: str) -> list[str]:
    """The values mask_url hides, as written and percent-decoded."""
    from urllib.parse import unquote, unquote_plus, urlsplit  # 4 ms: only for HTTP checks

    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    if parts.password:
        found.append(parts.password)
    elif parts.username and parts.scheme.lower() in ("http", "https"):
        found.append(parts.username)
    for text in (parts.query, parts.fragment):
        for pair in re.split(r"[&;]", text):
            key, _, value = pair.partition("=")
            if value and SECRET_PARAM.search(unquote_plus(key)):
                found.append(value)
    return sorted({v for s in found for v in (s, unquote(s), unquote_plus(s)) if v})


def read_env_file(text: str) -> dict[str, str]:
    """Parse a .env file's KEY=VALUE lines (quotes stripped); enough to know its secrets."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values
