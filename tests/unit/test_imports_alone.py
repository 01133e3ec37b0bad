"""Every module imports on its own, in a fresh interpreter: an import cycle that the test
suite's import order happens to hide (it once broke `releasegate demo`) fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import releasegate

ROOT = Path(releasegate.__file__).parent
MODULES = sorted(
    "releasegate." + ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in ROOT.rglob("*.py")
    if "migrations/versions" not in p.as_posix() and p.parent.name != "app"
)


def test_every_module_imports_alone() -> None:
    # One interpreter per module, run a few at a time: each import starts from nothing.
    script = "import importlib, sys; importlib.import_module(sys.argv[1])"
    failed = []
    procs = [
        (m, subprocess.Popen([sys.executable, "-c", script, m], stderr=subprocess.PIPE, text=True))
        for m in MODULES
        # Alembic's env script runs only under Alembic; __main__ runs the command line.
        if not m.endswith(("ledger.migrations.env", "__main__"))
    ]
    for module, proc in procs:
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            failed.append(
                f"{module}: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}"
            )
    assert not failed, "\n".join(failed)
