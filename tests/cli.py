"""The installed `releasegate` console script, as tests run it: what a user types, through
the entry point pip wrote (not `python -m releasegate`, which would skip it)."""

from __future__ import annotations

import sys
from pathlib import Path

# Beside the interpreter running the tests, so the script of this venv is the one run,
# whatever PATH says.
RELEASEGATE = str(Path(sys.executable).with_name("releasegate"))

if not Path(RELEASEGATE).is_file():  # pragma: no cover - an install step was skipped
    raise RuntimeError(f"{RELEASEGATE} is missing: install the package (pip install -e '.[dev]')")
