"""The fleet benchmark's pure part (benchmarks/fleet/report.py): medians, ratios, targets and
the table. Made-up times only: no test asserts on a measured timing."""

from __future__ import annotations

from benchmarks.fleet import report

TOOLS = ["releasegate", "pyinfra", "ansible"]
TIMES = {
    "releasegate": {1: [1.0, 3.0, 2.0], 30: [3.0, 4.0, 5.0]},
    "pyinfra": {1: [4.0, 4.0, 4.0], 30: [10.0, 8.0, 12.0]},
    "ansible": {1: [6.0], 30: [40.0, 30.0, 50.0]},
}


def test_medians_per_tool_and_host_count() -> None:
    assert report.medians(TIMES) == {
        "releasegate": {1: 2.0, 30: 4.0},
        "pyinfra": {1: 4.0, 30: 10.0},
        "ansible": {1: 6.0, 30: 40.0},
    }
    assert report.medians({"pyinfra": {10: []}}) == {}


def test_ratio_is_none_without_both_figures() -> None:
    assert report.ratio(2.0, 4.0) == 0.5
    assert report.ratio(None, 4.0) is None
    assert report.ratio(2.0, None) is None
    assert report.ratio(2.0, 0.0) is None


def test_targets_at_the_largest_fleet() -> None:
    found = {t.name: t for t in report.targets(report.medians(TIMES), [1, 30])}
    assert found["releasegate/pyinfra at 30 hosts"].value == 0.4
    assert found["releasegate/pyinfra at 30 hosts"].ok is True
    assert found["releasegate/ansible at 30 hosts"].value == 0.1
    assert found["releasegate/ansible at 30 hosts"].verdict == "met"
    scale = found["releasegate 30 hosts / 1 host"]
    assert (scale.value, scale.limit, scale.ok) == (2.0, 2.0, True)


def test_a_missed_target_and_one_not_measured() -> None:
    times = {"releasegate": {1: [1.0], 10: [3.0]}, "pyinfra": {10: [5.0]}}
    found = {t.name: t for t in report.targets(report.medians(times), [1, 10])}
    assert found["releasegate/pyinfra at 10 hosts"].verdict == "MISSED"
    assert found["releasegate/ansible at 10 hosts"].verdict == "not measured"
    assert found["releasegate 10 hosts / 1 host"].verdict == "MISSED"
    # One host count: no scale target.
    assert [t.name for t in report.targets(report.medians(times), [10])] == [
        "releasegate/pyinfra at 10 hosts",
        "releasegate/ansible at 10 hosts",
    ]


def test_targets_below_the_floor_are_named() -> None:
    times = {
        "releasegate": {1: [1.0], 30: [3.0]},
        "pyinfra": {30: [4.0]},
        "ansible": {30: [40.0]},
        "floor": {1: [0.2], 30: [2.2]},
    }
    found = {t.name: t for t in report.targets(report.medians(times), [1, 30])}
    pyinfra = found["releasegate/pyinfra at 30 hosts"]
    assert (pyinfra.allowed_s, pyinfra.floor_s, pyinfra.reachable) == (2.0, 2.2, False)
    assert "BELOW the floor's 2.20 s: no tool can meet it" in pyinfra.floor_note
    ansible = found["releasegate/ansible at 30 hosts"]
    assert ansible.reachable is True and ansible.floor_note.startswith("it allows 8.00 s, above")
    assert found["releasegate 30 hosts / 1 host"].allowed_s == 2.0
    assert found["releasegate 30 hosts / 1 host"].reachable is False
    # Without a floor run nothing is claimed either way.
    plain = report.targets(report.medians(TIMES), [1, 30])
    assert all(t.reachable is None and t.floor_note == "" for t in plain)
    lines = report.table(times, ["releasegate", "pyinfra", "ansible", "floor"], [1, 30])
    assert any("MISSED; it allows 2.00 s, BELOW" in line for line in lines)


def test_table_side_by_side_with_ratios_targets_and_errors() -> None:
    errors = {"ansible": {1: "exit 2: unreachable"}}
    lines = report.table(TIMES, TOOLS, [1, 30], errors)
    assert lines[0].split() == [
        "hosts", "releasegate", "pyinfra", "ansible", "rg/pyinfra", "rg/ansible",
    ]  # fmt: skip
    assert set(lines[1]) == {"-", " "}
    # A cell with an error has no figure, so no ratio either (even with runs that passed).
    assert lines[2].split() == ["1", "2.00", "s", "4.00", "s", "ERROR", "0.50x", "-"]
    assert lines[3].split() == ["30", "4.00", "s", "10.00", "s", "40.00", "s", "0.40x", "0.10x"]
    assert "releasegate/pyinfra at 30 hosts: 0.40x (target <= 0.5x) met" in lines
    assert "releasegate/ansible at 30 hosts: 0.10x (target <= 0.2x) met" in lines
    assert "releasegate 30 hosts / 1 host: 2.00x (target <= 2x) met" in lines
    assert lines[-1] == "ERROR ansible at 1 hosts: exit 2: unreachable"
    # Columns line up: every row is as wide as the header.
    assert len({len(line) for line in lines[:4]}) == 1


def test_table_of_peers_only_has_no_ratios() -> None:
    lines = report.table({"pyinfra": {1: [4.0]}}, ["pyinfra"], [1])
    assert lines[0].split() == ["hosts", "pyinfra"]
    assert lines[2].split() == ["1", "4.00", "s"]
    assert len(lines) == 3


def test_a_second_table_without_targets_or_error_lines() -> None:
    errors = {"ansible": {1: "exit 2"}}
    lines = report.table(TIMES, TOOLS, [1, 30], errors, with_targets=False)
    assert len(lines) == 4
    assert "ERROR" in lines[2]
