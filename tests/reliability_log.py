"""Evidence for docs/reliability.md: reliability tests record what they tried and what happened.

Each call to ``record`` appends one JSON line to the file named by ``IPASS_RELIABILITY_LOG`` (and
does nothing when it is unset, as in a plain ``pytest`` run). ``scripts/reliability_report.py``
runs the suite with it set and turns the lines into the tables of docs/reliability.md, so the
published figures are the ones the suite itself measured.

Record *before* asserting: a failing case must still show up in the report with its figures.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

LOG_ENV = "IPASS_RELIABILITY_LOG"
_lock = threading.Lock()


def record(
    category: str,
    case: str,
    outcome: str,
    *,
    double_applied: int = 0,
    falsely_reported: int = 0,
    lost: int = 0,
    sent_when_it_should_not: int = 0,
    cases: int = 1,
) -> None:
    """One tried case (or ``cases`` of them): its class, what was observed, and the four failure counts.

    - ``double_applied``: budget changes applied more than once for one requestId
    - ``falsely_reported``: answers that claimed SUCCEEDED/FAILED contrary to what AlipayHK did
    - ``lost``: changes AlipayHK applied that the ledger/answers do not account for
    - ``sent_when_it_should_not``: requests that reached AlipayHK although they should not have
    """
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = json.dumps(
        {
            "category": category,
            "case": case,
            "outcome": outcome,
            "cases": cases,
            "double_applied": double_applied,
            "falsely_reported": falsely_reported,
            "lost": lost,
            "sent_when_it_should_not": sent_when_it_should_not,
        }
    )
    with _lock, Path(path).open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
