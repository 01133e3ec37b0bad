"""Anchors: the ledger head (seq, hash, time) kept outside the database.

The hash chain shows an edited row, but someone who can write the database can also
recompute every hash after a forged row and the head, or cut the tail and rewrite the
head. An anchor taken before that, kept where they cannot reach (another machine, a
ticket, a signed file), proves it: the row at the anchor's seq must still have the
anchor's hash, and the chain must still verify from there to the head.

An anchor file may be signed with an SSH key (`ssh-keygen -Y sign`, namespace
releasegate-anchor) and checked against an allowed_signers file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from releasegate import sshsig
from releasegate.errors import BadInput, ReleasegateError, Tampered

if TYPE_CHECKING:
    from releasegate.ledger.store import Ledger

FORMAT = "releasegate-anchor/1"
NAMESPACE = "releasegate-anchor"
MAX_ANCHOR_BYTES = 4096
_HASH = re.compile(r"[0-9a-f]{64}")
_NAMED = re.compile(r"anchor-(\d{8,})-[0-9T-]+Z\.json")


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    time: str  # UTC, ISO 8601

    def describe(self) -> str:
        return f"row {self.seq} (hash {self.hash[:12]}…) anchored on {self.time}"


@dataclass(frozen=True)
class Written:
    anchor: Anchor
    path: Path
    signature: Path | None


@dataclass(frozen=True)
class Checked:
    anchor: Anchor
    path: Path
    signer: str | None  # the allowed_signers principal, when a signature was checked
    message: str


# -- taking an anchor ----------------------------------------------------------------------


def take(ledger: Ledger) -> Anchor:
    """The ledger head now (LedgerTampered if the head row is missing)."""
    seq, hash_ = ledger.head()
    return Anchor(seq, hash_, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def to_text(anchor: Anchor) -> str:
    body = {"format": FORMAT, "seq": anchor.seq, "hash": anchor.hash, "time": anchor.time}
    return json.dumps(body, indent=2) + "\n"


def write_anchor(ledger: Ledger, to: Path, sign_key: Path | None = None) -> Written:
    """Write the head to `to` (a file, replaced), or to a new file in `to` when it is a
    folder; with `sign_key`, FILE.sig beside it. Both appear at once (renamed into place).

    A ledger that does not verify from its last checkpoint, or no longer extends the
    anchor already there, is never anchored (Tampered): a new anchor must not bless it.
    """
    ledger.ensure_trusted(())
    previous = _previous(to)
    if previous is not None:
        check(ledger, previous)
    anchor = take(ledger)
    path = (
        to / f"anchor-{anchor.seq:08d}-{anchor.time.replace(':', '')}.json" if to.is_dir() else to
    )
    if not path.parent.is_dir():
        raise BadInput(f"cannot write the anchor to {path}: folder {path.parent} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    signature: Path | None = None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(to_text(anchor))
        os.chmod(tmp, 0o644)  # an anchor is meant to be copied and compared, not hidden
        if sign_key is not None:
            signature = Path(f"{path}.sig")
            sig_tmp = Path(f"{tmp}.sig")
            sig_tmp.write_text(sshsig.sign(sign_key, tmp.read_bytes(), NAMESPACE), "ascii")
            os.replace(sig_tmp, signature)
        os.replace(tmp, path)
    except OSError as exc:
        raise BadInput(f"cannot write the anchor to {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.sig").unlink(missing_ok=True)
    return Written(anchor, path, signature)


def _previous(to: Path) -> Path | None:
    if to.is_dir():
        return _newest(to)
    return to if to.exists() else None


def anchor_after_run(config: Any, ledger: Ledger) -> str | None:
    """After a deploy or rollback: anchor the head where `audit.anchor` says (signed with
    `audit.sign_key`). None when not configured; else a line for the person running it
    (a failure to anchor is reported, never raised: the run itself is over)."""
    audit = getattr(config, "audit", None)
    target = getattr(audit, "anchor", None)
    if target is None:
        return None
    try:
        written = write_anchor(ledger, Path(target), getattr(audit, "sign_key", None))
    except ReleasegateError as exc:
        return f"could not anchor the ledger: {exc.message}"
    signed = ", signed" if written.signature else ""
    return f"ledger anchored: {written.anchor.describe()} -> {written.path}{signed}"


def check_configured_anchor(config: Any, ledger: Ledger) -> Checked | None:
    """Before a run (for the lead to wire): with `audit.anchor` set, the ledger must still
    extend the newest anchor there (Tampered, exit 6, otherwise). Cheap: it walks the rows
    written since that anchor. None when there is no anchor yet."""
    target = getattr(getattr(config, "audit", None), "anchor", None)
    previous = _previous(Path(target)) if target is not None else None
    return check(ledger, previous) if previous is not None else None


# -- checking against an anchor ------------------------------------------------------------


def read_anchor(path: Path) -> Anchor:
    """Parse an anchor file; BadInput for anything that is not one."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_ANCHOR_BYTES + 1)
    except OSError as exc:
        raise BadInput(f"cannot read anchor {path}: {exc.strerror or exc}") from None
    try:
        body = json.loads(data) if len(data) <= MAX_ANCHOR_BYTES else None
    except ValueError:
        body = None
    if (
        not isinstance(body, dict)
        or body.get("format") != FORMAT
        or type(body.get("seq")) is not int
        or body["seq"] < 0
        or not isinstance(body.get("hash"), str)
        or not _HASH.fullmatch(body["hash"])
        or not isinstance(body.get("time"), str)
    ):
        raise BadInput(
            f"{path} is not a releasegate anchor",
            hint=f'expected JSON with "format": "{FORMAT}", seq, hash and time',
        )
    return Anchor(body["seq"], body["hash"], body["time"][:40])


def newest_in(folder: Path) -> Path:
    """The anchor with the highest seq in a folder of anchors."""
    newest = _newest(folder)
    if newest is None:
        raise BadInput(f"no releasegate anchor in {folder}")
    return newest


def _newest(folder: Path) -> Path | None:
    # Files named by write_anchor carry their seq: only the newest of them is read, so a
    # folder of thousands of anchors costs one read per run. Other names are all read.
    found: list[tuple[int, str, Path]] = []
    named: list[tuple[int, Path]] = []
    for path in folder.glob("*.json"):
        match = _NAMED.fullmatch(path.name)
        if match:
            named.append((int(match.group(1)), path))
            continue
        found += _seq_time_path(path)
    for _seq, path in sorted(named, reverse=True):
        newest = _seq_time_path(path)
        if newest:
            found += newest
            break
    return max(found)[2] if found else None


def _seq_time_path(path: Path) -> list[tuple[int, str, Path]]:
    try:
        anchor = read_anchor(path)
    except BadInput:
        return []
    return [(anchor.seq, anchor.time, path)]


def check(ledger: Ledger, path: Path, allowed_signers: Path | None = None) -> Checked:
    """Prove that the ledger still extends the anchor at `path` (a file, or the newest in
    a folder); with `allowed_signers`, that PATH.sig is a good signature by one of them.
    Tampered (exit 6) otherwise."""
    if path.is_dir():
        path = newest_in(path)
    anchor = read_anchor(path)
    signer = verify_signature(path, allowed_signers) if allowed_signers is not None else None
    ledger.ensure_extends(anchor.seq, anchor.hash, f"anchored on {anchor.time} ({path})")
    by = f", signed by {signer}" if signer else ""
    message = f"the ledger extends the anchor {path}: {anchor.describe()}{by}"
    return Checked(anchor, path, signer, message)


def verify_signature(path: Path, allowed_signers: Path) -> str:
    """The principal whose key signed PATH (PATH.sig, as `ssh-keygen -Y sign` writes it, in
    namespace releasegate-anchor); Tampered when none of `allowed_signers` did."""
    signature = Path(f"{path}.sig")
    if not signature.is_file():
        raise Tampered(
            f"anchor {path} has no signature ({signature.name} is missing)",
            hint="sign anchors with `releasegate audit anchor --sign-key KEY`",
        )
    try:
        text = signature.read_text(encoding="ascii")[:MAX_ANCHOR_BYTES]
    except (OSError, UnicodeDecodeError):
        text = ""
    principal = sshsig.signer(allowed_signers, text, path.read_bytes(), NAMESPACE)
    if principal is None:
        raise Tampered(
            f"anchor {path}: no key in {allowed_signers} signed this content "
            "(edited after signing, or signed by an unknown key)",
            hint="an anchor whose signature fails proves nothing; use another copy",
        )
    return principal
