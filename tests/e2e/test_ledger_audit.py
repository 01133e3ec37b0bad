"""Issue 16, rows 5 and 11-16 and anchors: the real CLI against a real workspace, ledger
rows forged with sqlite3, anchors signed with a real ssh-keygen."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from releasegate.ledger.chain import HASHED_COLUMNS, row_hash

pytestmark = pytest.mark.e2e


def state_db(lab) -> Path:
    return lab.root / ".releasegate" / "state.db"


def sql(lab, statement: str, *params: object) -> None:
    with sqlite3.connect(state_db(lab)) as conn:
        conn.execute(statement, params)


def verify_row(lab, stack: str) -> int:
    with sqlite3.connect(state_db(lab)) as conn:
        return conn.execute(
            "SELECT MAX(seq) FROM entries WHERE action = 'verify' AND stack = ?", (stack,)
        ).fetchone()[0]


def forge_with_hashes(lab, seq: int, version: str) -> None:
    """Change row `seq`'s version and recompute every later hash and the head; a forger who
    knows releasegate also drops its checkpoints. Nothing inside the database is left to
    catch it."""
    cols = ", ".join(HASHED_COLUMNS)
    with sqlite3.connect(state_db(lab)) as conn:
        conn.execute("UPDATE entries SET version = ? WHERE seq = ?", (version, seq))
        prev = conn.execute("SELECT prev_hash FROM entries WHERE seq = ?", (seq,)).fetchone()[0]
        query = f"SELECT {cols} FROM entries WHERE seq >= ? ORDER BY seq"
        for content in conn.execute(query, (seq,)).fetchall():
            new = row_hash(prev, content)
            conn.execute(
                "UPDATE entries SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, new, content[0])
            )
            prev = new
        last = conn.execute("SELECT MAX(seq) FROM entries").fetchone()[0]
        conn.execute("UPDATE ledger_head SET seq = ?, hash = ?", (last, prev))
        conn.execute("DELETE FROM chain_checkpoints")


def cut_tail(lab, keep: int) -> None:
    """Rows after `keep` removed and the head rewritten to match (checkpoints dropped too)."""
    with sqlite3.connect(state_db(lab)) as conn:
        conn.execute("DELETE FROM entries WHERE seq > ?", (keep,))
        conn.execute(
            "UPDATE ledger_head SET seq = ?, hash = (SELECT hash FROM entries WHERE seq = ?)",
            (keep, keep),
        )
        conn.execute("DELETE FROM chain_checkpoints")


# -- row 5: the promotion gate trusts only a verified ledger ---------------------------------


@pytest.mark.parametrize("checked_after", [False, True], ids=["fresh", "behind-a-checkpoint"])
def test_a_forged_verify_row_refuses_promotion(lab, checked_after: bool):
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    if checked_after:  # status proves the chain: the verify row is now behind a checkpoint
        assert lab.rg("status").returncode == 0
    seq = verify_row(lab, "web-staging")
    sql(lab, "UPDATE entries SET version = 'v2' WHERE seq = ?", seq)

    out = lab.rg("deploy", "web-prod", "prod", "v2")
    assert out.returncode == 6, out.stdout + out.stderr
    assert f"row {seq} was edited after it was written (verify web-staging v2" in (
        out.stdout + out.stderr
    )
    assert lab.running_version("web-prod") is None  # prod never touched
    assert not (lab.root / "srv/web-prod/releases/v2").exists()


# -- rows 11-14: configs -------------------------------------------------------------------


def alias_bomb() -> str:
    lines = ["a0: &a0 [x,x,x,x,x,x,x,x,x]"]
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7)]
    return "\n".join([*lines, "stacks: *a6"]) + "\n"


@pytest.mark.parametrize("command", [["history"], ["status"], ["audit", "verify"]])
def test_an_alias_bomb_is_refused_at_once(lab, command: list[str]):
    lab.config.write_text(alias_bomb())
    assert len(alias_bomb()) < 450
    started = time.monotonic()
    out = lab.rg(*command, timeout=30)
    took = time.monotonic() - started
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"error: {lab.config}:" in out.stderr and "expands to more than" in out.stderr
    # The bound is 1 s for the refusal; the interpreter's start (and pydantic's import for
    # status) comes on top, so the whole process gets generous slack (it was 37 s).
    assert took < 5, took


def test_a_huge_config_is_refused_by_size(lab):
    text = lab.config.read_text()
    lab.config.write_text(text + "# " + "x" * 2_000_000 + "\n")
    for command in (["history"], ["deploy", "web-staging", "staging", "v1"]):
        out = lab.rg(*command)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "larger than 1,048,576 bytes" in out.stderr


def test_two_state_keys_are_refused_by_every_command(lab):
    text = lab.config.read_text()
    lab.config.write_text("state: one.db\n" + text + "state: two.db\n")
    line = len(text.splitlines()) + 2
    for command in (["history"], ["status"], ["audit", "verify"], ["verified"]):
        out = lab.rg(*command)
        assert out.returncode == 2, (command, out.stdout + out.stderr)
        assert f"{lab.config}:{line}: duplicate key 'state'" in out.stderr
    assert not (lab.root / "one.db").exists() and not (lab.root / "two.db").exists()


def test_read_only_commands_refuse_a_mistyped_state(lab):
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    lab.config.write_text("state: .releasegate/stat.db\n" + lab.config.read_text())
    typo = lab.root / ".releasegate/stat.db"
    commands = [
        ["audit", "verify"],
        ["history"],
        ["status"],
        ["verified"],
        ["lock", "status"],
        ["stacks"],
        ["audit", "anchor", "--to", str(lab.root / "a.json")],
    ]
    for command in commands:
        out = lab.rg(*command)
        assert out.returncode == 2, (command, out.stdout + out.stderr)
        assert f"no ledger at {typo}" in out.stderr and "state:" in out.stderr
        assert "chain intact" not in out.stdout
    assert not typo.exists()
    # A command that writes creates it.
    assert lab.rg("deploy", "web-staging", "staging", "v2").returncode == 0
    assert typo.exists()


# -- row 15: the head row ------------------------------------------------------------------


def test_a_missing_head_row_is_tampering(lab):
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    sql(lab, "DELETE FROM ledger_head")
    out = lab.rg("audit", "verify")
    assert out.returncode == 6, out.stdout + out.stderr
    assert "ledger head row is missing" in out.stderr
    out = lab.rg("audit", "verify", "--json")
    assert out.returncode == 6 and json.loads(out.stdout)["ok"] is False


# -- row 16: anchors outside the database -----------------------------------------------


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, Path]:
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen (openssh-client) is needed for the anchor tests")
    folder = tmp_path / "keys"
    folder.mkdir()
    found = {}
    for who in ("alice", "mallory"):
        key = folder / who
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", who, "-f", str(key)],
            check=True,
            capture_output=True,
        )
        found[who] = key
    public = (folder / "alice.pub").read_text().strip()
    signers = folder / "allowed_signers"
    signers.write_text(f'alice@example namespaces="releasegate-anchor" {public}\n')
    found["signers"] = signers
    return found


def verify_against(lab, anchors: Path, keys: dict[str, Path]):
    return lab.rg(
        "audit", "verify", "--anchor", str(anchors), "--allowed-signers", str(keys["signers"])
    )


def test_a_cut_tail_is_caught_against_an_earlier_anchor(lab, keys):
    anchors = lab.root / "anchors"
    anchors.mkdir()
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    keep = lab.rg("audit", "verify", "--json")
    keep_seq = json.loads(keep.stdout)["head_seq"]
    assert lab.rg("deploy", "web-staging", "staging", "v2").returncode == 0
    out = lab.rg("audit", "anchor", "--to", str(anchors), "--sign-key", str(keys["alice"]))
    assert out.returncode == 0, out.stdout + out.stderr
    anchored = json.loads(next(anchors.glob("*.json")).read_text())
    out = verify_against(lab, anchors, keys)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "the ledger extends the anchor" in out.stdout and "signed by alice@example" in out.stdout

    cut_tail(lab, keep_seq)  # the v2 deploy is gone, and the head says so
    assert lab.rg("audit", "verify").returncode == 0  # the database alone cannot tell
    out = verify_against(lab, anchors, keys)
    assert out.returncode == 6, out.stdout + out.stderr
    assert f"rows after {keep_seq} were removed" in out.stderr
    assert f"up to row {anchored['seq']} was anchored on {anchored['time']}" in out.stderr
    assert lab.rg("verified").stdout.split().count("v1") == 1  # what the gate would now see


def test_a_forged_verify_row_with_new_hashes_is_caught_and_never_anchored(lab, keys):
    anchors = lab.root / "anchors"
    anchors.mkdir()
    text = lab.config.read_text()
    lab.config.write_text(
        text + f"audit:\n  anchor: anchors\n  sign_key: {keys['alice']}\n", encoding="utf-8"
    )
    out = lab.rg("deploy", "web-staging", "staging", "v1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ledger anchored: row" in out.stderr
    [first] = anchors.glob("*.json")
    assert Path(f"{first}.sig").is_file()
    assert verify_against(lab, anchors, keys).returncode == 0

    forge_with_hashes(lab, verify_row(lab, "web-staging"), "v2")
    assert lab.rg("audit", "verify").returncode == 0  # every hash and link holds
    out = verify_against(lab, anchors, keys)
    assert out.returncode == 6, out.stdout + out.stderr
    assert "were rewritten after the chain was anchored on" in out.stderr

    # No run acts on it (promotion would believe v2), nor blesses it with a fresh anchor.
    out = lab.rg("deploy", "web-prod", "prod", "v2")
    assert out.returncode == 6, out.stdout + out.stderr
    assert "were rewritten after the chain was anchored on" in out.stderr
    assert lab.running_version("web-prod") is None
    assert list(anchors.glob("*.json")) == [first]


def test_an_anchor_edited_or_signed_by_another_key_proves_nothing(lab, keys):
    anchors = lab.root / "anchors"
    anchors.mkdir()
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    file = anchors / "head.json"
    sign = ["audit", "anchor", "--to", str(file), "--sign-key"]
    assert lab.rg(*sign, str(keys["mallory"])).returncode == 0
    out = verify_against(lab, file, keys)
    assert out.returncode == 6 and "signed this content" in out.stderr

    assert lab.rg(*sign, str(keys["alice"])).returncode == 0
    assert verify_against(lab, file, keys).returncode == 0
    body = json.loads(file.read_text())
    body["seq"] -= 1
    file.write_text(json.dumps(body))
    out = verify_against(lab, file, keys)
    assert out.returncode == 6 and "signed this content" in out.stderr
    file.with_name("head.json.sig").unlink()
    out = verify_against(lab, file, keys)
    assert out.returncode == 6 and "has no signature" in out.stderr


def test_a_broken_chain_is_never_anchored(lab):
    assert lab.rg("deploy", "web-staging", "staging", "v1").returncode == 0
    assert lab.rg("status").returncode == 0  # a checkpoint after every row
    seq = verify_row(lab, "web-staging")
    sql(lab, "UPDATE entries SET notes = 'edited' WHERE seq = ?", seq)
    out = lab.rg("audit", "anchor", "--to", str(lab.root / "head.json"))
    assert out.returncode == 6, out.stdout + out.stderr
    assert f"not anchored: row {seq} was edited" in out.stderr
    assert not (lab.root / "head.json").exists()
