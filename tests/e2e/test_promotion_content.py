"""Promotion binds to content: prod accepts a version only with the content staging
verified (the artifact's sha256), and names both digests when they differ."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_changed_artifact_after_staging_verified_is_refused_in_prod(lab):
    assert lab.rg("deploy", "web-staging", "staging", "v2").returncode == 0
    assert lab.rg("deploy", "web-prod", "prod", "v2").returncode == 0  # the same content
    # Someone changes v2's files after staging verified it.
    artifact = lab.root / "artifacts" / "v2"
    target = next(p for p in sorted(artifact.rglob("*")) if p.is_file())
    target.write_text(target.read_text() + "\n# changed after verification\n")
    out = lab.rg("deploy", "web-prod", "prod", "v2", "--reprepare")
    assert out.returncode == 3, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "other content" in text and "artifact sha256" in text, text
    assert text.count("verified") >= 1
    # Forced, it goes through and is recorded as such.
    forced = lab.rg(
        "deploy", "web-prod", "prod", "v2", "--reprepare", "--force", "--reason", "hotfix", "--json"
    )
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "FORCED past the promotion gate" in forced.stdout
