"""`migrate rollback --to-release`: the ledger's record of a release's migrations -> the
tool's downgrade targets, as data."""

from __future__ import annotations

import pytest

from releasegate.errors import BadInput, Refused
from releasegate.migrations.model import Migration, Status
from releasegate.migrations.targets import recorded_applied, rollback_targets


def status(tool: str, applied: list[str], pending: tuple[str, ...] = ()) -> Status:
    return Status(
        tool,
        "db",
        tuple(
            [Migration(n, "applied") for n in applied] + [Migration(n, "pending") for n in pending]
        ),
    )


def test_recorded_applied_reads_both_shapes_and_nothing_else() -> None:
    assert recorded_applied({"applied": ["a.0001"]}) == ["a.0001"]  # nothing was pending
    assert recorded_applied({"status": {"applied": ["a.0001", "a.0002"]}}) == ["a.0001", "a.0002"]
    assert recorded_applied({"head": "a.0001"}) is None  # an older record
    assert recorded_applied({"applied": "a.0001"}) is None
    assert recorded_applied({"applied": [1, 2]}) is None


def test_django_goes_back_per_app_and_to_zero() -> None:
    now = status("django", ["shop.0001", "shop.0002", "eval.0001", "eval.0002"], ("eval.0003",))
    assert rollback_targets("django", now, ["shop.0001", "shop.0002", "eval.0001"]) == ["eval.0001"]
    assert rollback_targets("django", now, ["shop.0001"]) == ["shop.0001", "eval.zero"]
    assert rollback_targets("django", now, [*now.applied]) == []


def test_django_never_goes_forward() -> None:
    now = status("django", ["eval.0001"], ("eval.0002",))
    with pytest.raises(Refused, match="would migrate forward"):
        rollback_targets("django", now, ["eval.0001", "eval.0002"])


def test_alembic_goes_to_the_recorded_revision_or_base() -> None:
    now = status("alembic", ["a1", "b2", "c3"])
    assert rollback_targets("alembic", now, ["a1", "b2"]) == ["b2"]
    assert rollback_targets("alembic", now, []) == ["base"]
    assert rollback_targets("alembic", now, ["a1", "b2", "c3"]) == []
    with pytest.raises(Refused):
        rollback_targets("alembic", status("alembic", ["a1"], ("b2",)), ["a1", "b2"])


def test_tools_without_down_migrations_are_refused() -> None:
    with pytest.raises(BadInput, match="down migrations"):
        rollback_targets("prisma", status("prisma", ["x"]), [])
