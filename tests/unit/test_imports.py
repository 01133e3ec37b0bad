"""releasegate.imports: asyncssh and httpx imported without the work releasegate never needs.
Each test runs in a fresh interpreter, where nothing is imported yet."""

from __future__ import annotations

import json
import subprocess
import sys


def _run(script: str) -> list[dict[str, object]]:
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_asyncssh_loads_without_spawning_compilers() -> None:
    # asyncssh probes optional C libraries with ctypes.util.find_library, which runs ldconfig,
    # gcc and ld; load_asyncssh answers from the loader's directories instead, finding the
    # same libraries, and puts find_library back.
    shim, plain = _run("""
import ctypes.util, json, subprocess
spawned = []
real = subprocess.Popen.__init__
def spy(self, args, *a, **k):
    spawned.append(str(args))
    real(self, args, *a, **k)
subprocess.Popen.__init__ = spy
original = ctypes.util.find_library
from releasegate.imports import load_asyncssh
load_asyncssh()
from asyncssh.crypto import pq, umac
print(json.dumps({"spawned": spawned, "restored": ctypes.util.find_library is original,
                  "nettle": bool(umac._nettle_lib), "oqs": bool(pq._oqs_lib)}))
subprocess.Popen.__init__ = real
print(json.dumps({"nettle": bool(original("nettle")), "oqs": bool(original("oqs"))}))
""")
    assert shim["spawned"] == [] and shim["restored"]
    assert (shim["nettle"], shim["oqs"]) == (plain["nettle"], plain["oqs"])


def test_httpx_loads_without_its_command_line_tool() -> None:
    (found,) = _run("""
import json, sys
from releasegate.imports import load_httpx
load_httpx()
import httpx
heavy = sorted(m for m in ("rich.progress", "rich.syntax", "pygments") if m in sys.modules)
reply = httpx.Response(200, text="v2")
try:
    httpx.main(["--help"])  # the real CLI, loaded on first call
except SystemExit as exc:
    code = exc.code
print(json.dumps({"heavy": heavy, "text": reply.text, "cli_exit": code,
                  "cli_loaded": "rich.progress" in sys.modules}))
""")
    assert found == {"heavy": [], "text": "v2", "cli_exit": 0, "cli_loaded": True}
