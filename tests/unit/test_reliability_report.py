"""scripts/reliability_report.py: the verdict fails on any non-zero total, a failed run or no records."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.scripts import SCRIPTS, load_script


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return load_script("reliability_report")


def line(category: str = "c", case: str = "k", outcome: str = "ok", **counts: int) -> dict[str, object]:
    return {"category": category, "case": case, "outcome": outcome, "cases": 1, **counts}


def test_a_clean_run_passes(report: ModuleType) -> None:
    assert report.verdict(0, [line(), line(case="other")]) == []


@pytest.mark.parametrize("counter", ["double_applied", "falsely_reported", "lost", "sent_when_it_should_not"])
def test_any_non_zero_total_fails(report: ModuleType, counter: str) -> None:
    failures = report.verdict(0, [line(), {**line(), counter: 1}])
    assert failures == [f"{report.COUNTER_TITLES[counter]}: 1"]


def test_a_failed_run_or_no_records_fails(report: ModuleType) -> None:
    assert report.verdict(1, [line()]) == ["pytest exited with status 1"]
    assert report.verdict(0, []) == ["no case was recorded"]


def test_the_report_lists_every_case_with_its_outcomes_and_escapes_pipes(report: ModuleType) -> None:
    lines = [line("A", "x", "200 | ok"), line("A", "x", "503"), line("B", "y", "ok", lost=2)]
    text = report.render(["tests/reliability"], "3 passed", 0, lines, report.verdict(0, lines))
    assert "| A | x | 2 | 200 \\| ok (x1); 503 (x1) | 0 | 0 | 0 | 0 |" in text
    assert "| B | y | 1 | ok | 0 | 0 | 2 | 0 |" in text
    assert "**FAIL: lost: 2**" in text


def test_suites_that_record_cases_are_discovered(report: ModuleType) -> None:
    root = SCRIPTS.parent
    recording = {
        folder.relative_to(root).as_posix()
        for folder in (root / "tests").iterdir()
        if folder.is_dir() and any("reliability_log" in path.read_text() for path in folder.rglob("*.py"))
    }

    suites = report.discover_suites()

    assert suites[:2] == ["tests/reliability", "tests/service"]
    assert set(suites) == {"tests/reliability", "tests/service"} | recording
