"""Back up a stack's config files (e.g. shared/.env) before a switch, in the seed layout
`<backups_dir>/<stack>/<YYYYmmdd_HHMMSS>/` with a manifest of sha256 sums."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releasegate.transport.base import Transport


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup_config_files(
    *,
    transport: Transport,
    stack: str,
    env: str,
    root: Path,
    files: list[str],
    backups_dir: Path,
    running_version: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Returns the manifest. Written under a temporary name and renamed when complete,
    so a half-written backup never looks whole."""
    now = now or datetime.now(UTC)
    present = [f.rstrip("/") for f in files if (root / f.rstrip("/")).exists()]
    missing = [f for f in files if f.rstrip("/") not in present]
    stamp = now.astimezone().strftime("%Y%m%d_%H%M%S")
    base = backups_dir / stack
    final = base / stamp
    n = 1
    while final.exists():  # two backups in one second keep both
        final = base / f"{stamp}_{n}"
        n += 1
    tmp = base / f".{final.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    manifest: dict[str, Any] = {
        "stack": stack,
        "env": env,
        "created_at": now.isoformat(),
        "running_version": running_version,
        "root": str(root),
        "files": present,
        "missing": missing,
        "archives": [],
    }
    try:
        if present:
            archive = tmp / "config.tar.gz"
            result = transport.run(
                ["tar", "-czf", str(archive), "-C", str(root), "--", *present], timeout=600
            )
            if not result.ok:
                raise OSError(f"tar failed: {result.describe()}: {result.stderr.strip()[-300:]}")
            manifest["archives"].append(
                {
                    "name": archive.name,
                    "size": archive.stat().st_size,
                    "sha256": sha256_file(archive),
                }
            )
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest["path"] = str(final)
    return manifest
