"""Third-party packages that cost more to import than they should, imported cheaply.

Both are imported on first use, never when releasegate starts; these functions make that
first import skip work releasegate never needs. Measured on the fleet benchmark's 1-host
deploy, where the CLI's own start is most of the time: about 80 ms (asyncssh) and 60 ms
(httpx) of CPU.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

_LIB_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/local/lib64")


def load_asyncssh() -> None:
    """Import asyncssh once, cheaply.

    At import, asyncssh looks for optional C libraries (liboqs for post-quantum key
    exchange, nettle for UMAC) with ctypes.util.find_library, which on Linux runs ldconfig,
    and gcc and ld for a library that is not installed: about 80 ms of CPU here, two thirds
    of a one-host deploy's SSH set-up. During that import the loader's own directories (and
    LD_LIBRARY_PATH) are searched instead, so an installed library is still found and used."""
    if "asyncssh" in sys.modules:
        return
    import ctypes.util

    original = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        dirs = [*os.environ.get("LD_LIBRARY_PATH", "").split(":"), *_LIB_DIRS]
        dirs += [str(p) for d in ("/lib", "/usr/lib") for p in Path(d).glob("*-linux-gnu*")]
        stem = name if name.startswith("lib") else f"lib{name}"
        for folder in filter(None, dirs):
            found = sorted(Path(folder).glob(f"{stem}.so*"))
            if found:
                return str(found[0])
        return None

    ctypes.util.find_library = find_library
    try:
        import asyncssh  # noqa: F401
    finally:
        ctypes.util.find_library = original


def load_httpx() -> None:
    """Import httpx without its command-line tool.

    httpx's __init__ imports its CLI module (click, rich.progress, rich.syntax, pygments)
    whenever those are installed, as they are here. A stand-in module takes its place, whose
    `main` loads the real one if anything ever calls it (releasegate never does). Proposed
    upstream as a lazy import (encode/httpx pull request 3547)."""
    if "httpx" in sys.modules:
        return

    def main(*args: object, **kwargs: object) -> object:
        del sys.modules["httpx._main"]
        from httpx._main import main as real

        return real(*args, **kwargs)

    stand_in = types.ModuleType("httpx._main", "httpx's CLI, loaded on first call")
    stand_in.main = main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stand_in
    import httpx  # noqa: F401
