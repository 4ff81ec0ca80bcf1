"""Helpers for the reliability suite: drive one request, observe the truth, count what went wrong.

The truth is AlipayHK's (the sandbox's) view: how often the budget changed for the request and how
many requests with its requestId arrived. ``Probe`` compares every answer and the ledger with it
and produces the four counts of tests/reliability_log.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest

from ipass_budget.ledger import Ledger
from ipass_budget.schedule import schedule_request_id
from ipass_local.lambda_context import LocalLambdaContext
from tests.reliability_log import record
from tests.service.support import ApiAnswer, ServiceEnv, call_api, new_id, update

SCHEDULE_ARN = "arn:aws:scheduler:us-east-1:000000000000:schedule/default/reliability"


def set_policy(handler: ModuleType, monkeypatch: pytest.MonkeyPatch, policy: str) -> None:
    monkeypatch.setenv("UNKNOWN_OUTCOME_POLICY", policy)
    handler.budget_service.cache_clear()


@contextmanager
def time_shifted(handler: ModuleType, seconds: float) -> Iterator[None]:
    """Make ``seconds`` of wall-clock time pass for the handler's service and ledger, without sleeping.

    Leases are the only rule that reads the wall clock, and both the service (is the lease still
    live?) and the ledger (the new lease it writes) read it through these two clocks. Shifting
    them is time passing for this execution environment; the ledger item stays exactly what the
    earlier (crashed or failed) invocation left, which rewriting ``leaseExpiresAt`` would not.
    """
    service = handler.budget_service()
    saved = service._clock, service.ledger._clock

    def shifted() -> float:
        return time.time() + seconds

    service._clock = service.ledger._clock = shifted
    try:
        yield
    finally:
        service._clock, service.ledger._clock = saved


def schedule_event(number: int, template: str = "DEMO-VALID") -> dict[str, Any]:
    return {
        "templateCode": template,
        "updateType": "APPEND_BUDGET",
        "number": number,
        "schedule": {"arn": SCHEDULE_ARN, "scheduledTime": f"2026-12-04T09:00:00Z#{new_id()}"},
    }


@dataclass
class Answer:
    """One invocation's answer, API or schedule, reduced to what the checks need."""

    status: int  # HTTP status; for the schedule path 200 when it returned, 0 when it raised
    outcome: str | None
    code: str | None
    elapsed: float
    body: dict[str, Any] = field(default_factory=dict)
    applied: int = 0  # how often AlipayHK had applied the change when this answer was given
    via: str = "api"

    @property
    def final(self) -> bool:
        """SUCCEEDED, or FAILED by AlipayHK's budget logic (a refusal before it, 502, is not final)."""
        return self.outcome == "SUCCEEDED" or (self.outcome == "FAILED" and self.code != "UPSTREAM_REJECTED")

    @property
    def label(self) -> str:
        if self.status == 0:
            return f"raised {self.code}"
        label = f"{self.status} {self.outcome or self.code}" if self.via == "api" else f"returned {self.outcome}"
        return f"{label} ({self.code})" if self.code == "UPSTREAM_REJECTED" else label


@dataclass
class Probe:
    """One request under test: drive it through the API or the schedule path and check the truth."""

    env: ServiceEnv
    handler: ModuleType
    number: int = 7
    template: str = "DEMO-VALID"
    path: str = "api"  # or "schedule"
    request_id: str = ""
    answers: list[Answer] = field(default_factory=list)
    event: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dynamodb = self.env.dynamodb()  # one client: creating a boto3 client takes ~50 ms
        self.before = self.env.budget(self.template)
        if self.path == "schedule":
            self.event = schedule_event(self.number, self.template)
            schedule = self.event["schedule"]
            self.request_id = schedule_request_id(schedule["arn"], schedule["scheduledTime"])
        elif not self.request_id:
            self.request_id = new_id()

    def call(self, timeout_seconds: float = 25.0) -> Answer:
        started = time.monotonic()
        if self.path == "api":
            api: ApiAnswer = call_api(
                self.handler,
                "POST",
                "/budget-updates",
                update(self.request_id, self.number, template=self.template),
                timeout_seconds=timeout_seconds,
            )
            error = api.body.get("error") or {}
            answer = Answer(api.status, api.body.get("outcome"), error.get("code"), 0.0, api.body)
        else:
            try:
                body = self.handler.lambda_handler(self.event, LocalLambdaContext(timeout_seconds=timeout_seconds))
                answer = Answer(200, body.get("outcome"), (body.get("error") or {}).get("code"), 0.0, body)
            except self.handler.ScheduledUpdateNotFinalError as exc:
                # "schedule occurrence ... is not final: CODE": the code is the last word.
                answer = Answer(0, None, str(exc).rsplit(" ", 1)[-1], 0.0)
        answer.elapsed = time.monotonic() - started
        answer.via = self.path
        answer.applied = self.applied()
        self.answers.append(answer)
        return answer

    def converge(self, calls: int = 3, timeout_seconds: float = 25.0) -> Answer:
        """Call again (the same requestId and payload) until the outcome is final."""
        answer = self.answers[-1] if self.answers else self.call(timeout_seconds)
        for _ in range(calls):
            if answer.final:
                break
            answer = self.call(timeout_seconds)
        return answer

    # The truth, from the sandbox.
    def applied(self) -> int:
        delta = self.env.budget(self.template) - self.before
        assert delta % self.number == 0, f"budget changed by {delta}, not a multiple of {self.number}"
        return delta // self.number

    def arrivals(self) -> int:
        return self.env.arrivals(self.request_id)

    def ledger_state(self) -> str | None:
        key = {"requestId": {"S": self.request_id}}
        item = self.dynamodb.get_item(TableName=self.env.table_name, Key=key, ConsistentRead=True).get("Item")
        return item["state"]["S"] if item else None

    def resolve(self, by: str = "reliability-test") -> None:
        """The operator's reconciliation: look at AlipayHK (the sandbox) and record what it did."""
        ledger = Ledger(self.dynamodb, self.env.table_name)
        existing = ledger.get(self.request_id)
        assert existing is not None
        ledger.resolve(
            existing, applied=self.applied() > 0, by=by, note="checked with AlipayHK", retention_seconds=86_400
        )

    def counts(self, *, allowed_arrivals: int | None = None, settled: bool = True) -> dict[str, int]:
        """The four failure counts. ``settled``: the ledger should now hold the final truth."""
        applied = self.applied()
        # SUCCEEDED must mean applied; FAILED (final, or refused before processing) must mean not applied.
        false = sum(
            (a.outcome == "SUCCEEDED" and a.applied == 0) or (a.outcome == "FAILED" and a.applied > 0)
            for a in self.answers
        )
        lost = int(settled and applied > 0 and self.ledger_state() != "SUCCEEDED")
        sent = 0 if allowed_arrivals is None else max(0, self.arrivals() - allowed_arrivals)
        return {
            "double_applied": max(0, applied - 1),
            "falsely_reported": false,
            "lost": lost,
            "sent_when_it_should_not": sent,
        }

    def record(
        self,
        category: str,
        case: str,
        outcome: str | None = None,
        *,
        allowed_arrivals: int | None = None,
        settled: bool = True,
    ) -> dict[str, int]:
        counts = self.counts(allowed_arrivals=allowed_arrivals, settled=settled)
        record(category, case, outcome or " then ".join(a.label for a in self.answers), **counts)
        return counts


NO_FAILURES = {"double_applied": 0, "falsely_reported": 0, "lost": 0, "sent_when_it_should_not": 0}
