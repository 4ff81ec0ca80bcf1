#!/usr/bin/env python3
"""Run the reliability-relevant test suites and write docs/reliability.md from what they recorded.

Every reliability test calls ``tests.reliability_log.record(...)`` before asserting; with
``IPASS_RELIABILITY_LOG`` set, each call appends one JSON line. This script runs pytest on
tests/reliability, tests/service and every other test folder whose code uses the log (found by
scanning, so suites added later, e.g. tests/fuzz, are picked up), aggregates the lines by category
and case, and writes the report. It exits non-zero if pytest failed, nothing was recorded, or any
of the four failure totals (double applied, falsely reported, lost, sent when it should not) is
not zero.

    .venv/bin/python scripts/reliability_report.py [--output docs/reliability.md] [-- extra pytest args]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS = REPO_ROOT / "tests"
ALWAYS = ("tests/reliability", "tests/service")
LOG_ENV = "IPASS_RELIABILITY_LOG"
LOG_MODULE = "reliability_log"
COUNTERS = ("double_applied", "falsely_reported", "lost", "sent_when_it_should_not")
COUNTER_TITLES = {
    "double_applied": "double applied",
    "falsely_reported": "falsely reported",
    "lost": "lost",
    "sent_when_it_should_not": "sent when it should not",
}
MAX_OUTCOME_CHARS = 300

GUARANTEES = """\
## What the service guarantees

These hold for every case above, under both unknown-outcome policies, on the API and the schedule path:

- **At most once per requestId.** The claim is one conditional DynamoDB write, recorded before
  anything is sent; a request that may have reached AlipayHK is only ever sent again with the same
  requestId and body (RESEND), or never again until an operator reconciles it (HOLD, where the client
  does not even retry within the call once an attempt may have been applied).
- **No false outcome.** SUCCEEDED means AlipayHK said S in a verified answer; FAILED means AlipayHK's
  budget logic refused it (or, 502 `UPSTREAM_REJECTED`, its gateway refused it before applying).
  Everything else is UNKNOWN (503/504, or a raised schedule invocation) and is never stored as final.
- **Nothing lost.** A change AlipayHK applied ends as SUCCEEDED in the ledger: by the next call with
  the same requestId (RESEND) or by reconciliation (HOLD). UNKNOWN items never expire.
- **Nothing sent when the answer says so.** `DEPENDENCY_UNAVAILABLE` and `MISCONFIGURED` answers and
  calls refused for lack of time sent nothing to AlipayHK.
- **Within the deadline.** No Secrets Manager or DynamoDB attempt starts that could end after its
  step's limit (its connect + read timeouts: 1.5 s), AlipayHK gets the invocation's time minus
  `RESPONSE_RESERVE_SECONDS` (at least one whole ledger write plus 0.25 s), and nothing is claimed or
  sent without time for one AlipayHK attempt; a crash or timeout at any step is recovered by the lease.
"""


@dataclass
class Row:
    cases: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def add(self, line: dict[str, object]) -> None:
        cases = _int(line.get("cases", 1))
        self.cases += cases
        outcome = str(line.get("outcome", ""))
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + cases
        for name in COUNTERS:
            self.counts[name] += _int(line.get(name, 0))


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def discover_suites() -> list[str]:
    """tests/reliability, tests/service, and every other tests/ folder whose code records cases."""
    suites = [s for s in ALWAYS if (REPO_ROOT / s).is_dir()]
    for folder in sorted(p for p in TESTS.iterdir() if p.is_dir()):
        relative = folder.relative_to(REPO_ROOT).as_posix()
        if relative in suites:
            continue
        if any(LOG_MODULE in path.read_text(encoding="utf-8", errors="replace") for path in folder.rglob("*.py")):
            suites.append(relative)
    return suites


def run_pytest(suites: list[str], log_path: Path, extra: list[str]) -> tuple[int, str]:
    env = {**os.environ, LOG_ENV: str(log_path)}
    command = [sys.executable, "-m", "pytest", *suites, "-q", "-p", "no:cacheprovider", *extra]
    print("$", " ".join(command), flush=True)
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    summary = ""
    for line in process.stdout or ():
        sys.stdout.write(line)
        if re.search(r"\b(passed|failed|error)\b.* in [0-9.]+s", line):
            # The counts only: the run time would change the committed report on every run.
            summary = re.sub(r" in [0-9.]+s.*", "", line.strip().strip("=").strip())
    return process.wait(), summary


def read_log(log_path: Path) -> list[dict[str, object]]:
    if not log_path.exists():
        return []
    lines = []
    for raw in log_path.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            lines.append(json.loads(raw))
    return lines


def aggregate(lines: list[dict[str, object]]) -> tuple[dict[str, Row], dict[tuple[str, str], Row], Row]:
    by_category: dict[str, Row] = defaultdict(Row)
    by_case: dict[tuple[str, str], Row] = defaultdict(Row)
    total = Row()
    for line in lines:
        category, case = str(line.get("category", "?")), str(line.get("case", "?"))
        by_category[category].add(line)
        by_case[(category, case)].add(line)
        total.add(line)
    return by_category, by_case, total


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _outcomes(row: Row) -> str:
    parts = [text if n == row.cases or len(row.outcomes) == 1 else f"{text} (x{n})" for text, n in row.outcomes.items()]
    joined = "; ".join(parts)
    return joined if len(joined) <= MAX_OUTCOME_CHARS else joined[: MAX_OUTCOME_CHARS - 3] + "..."


def _counts(row: Row) -> list[str]:
    return [str(row.counts[name]) for name in COUNTERS]


def render(
    suites: list[str], summary: str, returncode: int, lines: list[dict[str, object]], failures: list[str]
) -> str:
    by_category, by_case, total = aggregate(lines)
    titles = [COUNTER_TITLES[name] for name in COUNTERS]
    out = [
        "# Reliability report",
        "",
        "Generated by `make reliability` (`scripts/reliability_report.py`) from what the test suites "
        "themselves recorded (`tests/reliability_log.py`); do not edit by hand.",
        "",
        f"- Suites run: {', '.join(f'`{s}`' for s in suites)}",
        f"- pytest: {summary or 'no summary'} (exit status {returncode})",
        f"- Cases recorded: {total.cases} in {len(by_case)} fault and input classes, {len(by_category)} categories",
        f"- Verdict: **{'PASS' if not failures else 'FAIL: ' + '; '.join(failures)}**",
        "",
        "## Totals (each must be zero)",
        "",
        "| " + " | ".join(titles) + " |",
        "|" + "---:|" * len(titles),
        "| " + " | ".join(_counts(total)) + " |",
        "",
        GUARANTEES,
        "## By category",
        "",
        "| category | cases | " + " | ".join(titles) + " |",
        "|---|---:|" + "---:|" * len(titles),
    ]
    for category in sorted(by_category):
        row = by_category[category]
        out.append(f"| {_cell(category)} | {row.cases} | " + " | ".join(_counts(row)) + " |")
    out += [
        "",
        "## Every fault and bad-input class tried",
        "",
        "| category | case | cases | observed outcome | " + " | ".join(titles) + " |",
        "|---|---|---:|---|" + "---:|" * len(titles),
    ]
    for category, case in sorted(by_case):
        row = by_case[(category, case)]
        out.append(
            f"| {_cell(category)} | {_cell(case)} | {row.cases} | {_cell(_outcomes(row))} | "
            + " | ".join(_counts(row))
            + " |"
        )
    return "\n".join(out) + "\n"


def verdict(returncode: int, lines: list[dict[str, object]]) -> list[str]:
    failures = []
    if returncode != 0:
        failures.append(f"pytest exited with status {returncode}")
    if not lines:
        failures.append("no case was recorded")
    _, _, total = aggregate(lines)
    failures += [f"{COUNTER_TITLES[name]}: {total.counts[name]}" for name in COUNTERS if total.counts[name]]
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--output", default=str(REPO_ROOT / "docs" / "reliability.md"))
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    suites = discover_suites()
    with tempfile.TemporaryDirectory(prefix="ipass-reliability-") as temp:
        log_path = Path(temp) / "reliability.jsonl"
        returncode, summary = run_pytest(suites, log_path, args.pytest_args)
        lines = read_log(log_path)
    failures = verdict(returncode, lines)
    output = Path(args.output)
    output.write_text(render(suites, summary, returncode, lines, failures), encoding="utf-8")
    print(f"wrote {output} ({len(lines)} records)")
    if failures:
        print("reliability check FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
