"""Issue 4 section 4, AlipayHK half: every sandbox fault kind, on attempt 1 only and on every attempt,
on the API and the schedule path, under both unknown-outcome policies.

Each case drives one request until it is final (the fault is lifted after the first call, as when
AlipayHK recovers; the caller or Lambda retries with the same requestId; under HOLD an operator
reconciles with what AlipayHK did) and checks the truth: no SUCCEEDED or FAILED contrary to what
AlipayHK did, the change applied exactly once (RESEND) or at most once and never re-sent (HOLD),
and every answer before the Lambda deadline.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from ipass_sandbox.faults import FaultKind
from tests.reliability.support import NO_FAILURES, Probe, set_policy
from tests.service.support import ServiceEnv

CONTEXT_SECONDS = 6.0
READ_TIMEOUT_SECONDS = "0.35"  # DELAY_AFTER_APPLY is then a timeout without a long wait
DELAY_SECONDS = 1.5
# What the first call answers when every attempt meets the fault (API status; schedule raises).
EVERY_ATTEMPT_STATUS = {FaultKind.DELAY_AFTER_APPLY: 504}


@pytest.fixture
def matrix_handler(handler: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("IPASS_READ_TIMEOUT_SECONDS", READ_TIMEOUT_SECONDS)
    handler.budget_service.cache_clear()
    return handler


def plan(env: ServiceEnv, request_id: str, fault: FaultKind, attempt: int | None) -> None:
    delay = DELAY_SECONDS if fault is FaultKind.DELAY_AFTER_APPLY else None
    env.admin.add_fault(request_id, fault, attempt=attempt, delay_seconds=delay)


# Each test runs the four (attempt, path) cases of one fault kind: they share one sandbox, table
# and handler, which keeps the 88 cases within seconds; each case records and checks on its own.
CASES = [(attempt, path) for attempt in (1, None) for path in ("api", "schedule")]


def which(attempt: int | None) -> str:
    return "attempt 1" if attempt else "every attempt"


@pytest.mark.parametrize("fault", list(FaultKind))
def test_resend_applies_each_change_exactly_once_and_never_misreports(
    matrix_handler: ModuleType, service_env: ServiceEnv, fault: FaultKind
) -> None:
    for attempt, path in CASES:
        probe = Probe(service_env, matrix_handler, path=path)
        plan(service_env, probe.request_id, fault, attempt)

        first = probe.call(CONTEXT_SECONDS)
        service_env.admin.clear_faults()
        final = probe.converge(timeout_seconds=CONTEXT_SECONDS)
        replay = probe.call(CONTEXT_SECONDS)

        counts = probe.record(f"AlipayHK fault, {which(attempt)} (RESEND, {path})", str(fault))
        case = f"{fault}, {which(attempt)}, {path}: {[a.label for a in probe.answers]}"
        assert all(a.elapsed < CONTEXT_SECONDS for a in probe.answers), case
        if attempt == 1:
            # Retried within the call with the same requestId; AlipayHK answers its first answer again.
            assert (first.status, first.outcome, first.code) == (200, "SUCCEEDED", None), case
        else:
            unknown_status = EVERY_ATTEMPT_STATUS.get(fault, 503) if path == "api" else 0
            assert (first.status, first.code) == (unknown_status, "OUTCOME_UNKNOWN"), case
        assert (final.status, final.outcome) == (200, "SUCCEEDED"), case
        assert (replay.outcome, replay.body["replayed"]) == ("SUCCEEDED", True), case
        assert probe.applied() == 1, case
        assert probe.ledger_state() == "SUCCEEDED", case
        assert counts == NO_FAILURES, case


@pytest.mark.parametrize("fault", list(FaultKind))
def test_hold_sends_once_and_stays_unknown_until_reconciled(
    matrix_handler: ModuleType, service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch, fault: FaultKind
) -> None:
    set_policy(matrix_handler, monkeypatch, "HOLD")
    for attempt, path in CASES:
        probe = Probe(service_env, matrix_handler, path=path)
        plan(service_env, probe.request_id, fault, attempt)

        first = probe.call(CONTEXT_SECONDS)
        service_env.admin.clear_faults()
        second = probe.call(CONTEXT_SECONDS)  # AlipayHK has recovered; the request is still not re-sent
        arrivals = probe.arrivals()
        probe.resolve()
        final = probe.call(CONTEXT_SECONDS)

        counts = probe.record(f"AlipayHK fault, {which(attempt)} (HOLD, {path})", str(fault), allowed_arrivals=1)
        case = f"{fault}, {which(attempt)}, {path}: {[a.label for a in probe.answers]}"
        assert all(a.elapsed < CONTEXT_SECONDS for a in probe.answers), case
        unknown_status = EVERY_ATTEMPT_STATUS.get(fault, 503) if path == "api" else 0
        assert (first.status, first.code) == (unknown_status, "OUTCOME_UNKNOWN"), case
        assert second.code == "OUTCOME_UNKNOWN", case
        assert arrivals == 1, case
        assert probe.applied() == int(fault.applies), case
        assert final.outcome == ("SUCCEEDED" if fault.applies else "FAILED"), case
        assert final.body["replayed"] is True, case
        assert counts == NO_FAILURES, case
