"""Keep secrets out of the ledger, the logs and the execution records.

Values are redacted by what they are (the values of secret-looking variables that
commands receive) and by shape (credentials in URLs, `password=...` pairs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MASK = "***"
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|API_?KEY|PRIVATE|CREDENTIAL|AUTH", re.IGNORECASE)
_URL_CREDS = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@"
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

    @classmethod
    def from_env(cls, *envs: Mapping[str, str]) -> Redactor:
        values = [v for env in envs for k, v in env.items() if SECRET_NAME.search(k)]
        return cls(values)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        text = _URL_CREDS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
        return _PAIRS.sub(lambda m: f"{m['key']}{MASK}", text)


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
