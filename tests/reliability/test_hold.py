"""Issue 4 section 2: UNKNOWN_OUTCOME_POLICY=HOLD end to end.

A request that may have been applied is never sent again by the service, neither by a later call
nor by the client's own retries within the call: AlipayHK sees it once, every call answers 503
UNKNOWN (the schedule path raises), and once an operator has reconciled it (``Ledger.resolve``,
what ``ipass-budget reconcile`` does) it replays as final.
"""

from __future__ import annotations

import json
import time
from types import ModuleType

import pytest

from ipass_budget.client import AlipayClient
from ipass_budget.credentials import Credentials
from ipass_budget.outcome import Reason
from tests.conftest import NO_WAIT_POLICY
from tests.reliability.support import NO_FAILURES, Probe, set_policy
from tests.reliability_log import record
from tests.service.support import ServiceEnv, call_api

CATEGORY = "HOLD policy"


@pytest.mark.parametrize("path", ["api", "schedule"])
def test_a_held_request_reaches_alipay_once_stays_unknown_and_replays_final_after_reconciliation(
    handler: ModuleType,
    service_env: ServiceEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    path: str,
) -> None:
    set_policy(handler, monkeypatch, "HOLD")
    probe = Probe(service_env, handler, path=path)
    service_env.admin.add_fault(probe.request_id, "U_AFTER_APPLY")  # every attempt

    held = [probe.call() for _ in range(4)]
    service_env.admin.clear_faults()
    still_held = probe.call()  # AlipayHK works again: the service still does not send it
    state_held = probe.ledger_state()
    metrics_output = capsys.readouterr().out
    probe.resolve()
    replay = probe.call()
    again = probe.call()

    counts = probe.record(CATEGORY, f"U after apply on every attempt, {path}", allowed_arrivals=1)
    unknown = (503, "UNKNOWN") if path == "api" else (0, None)
    assert [(a.status, a.outcome) for a in [*held, still_held]] == [unknown] * 5
    assert probe.arrivals() == 1  # never re-sent: not in the call, not by later calls
    assert state_held == "UNKNOWN"
    assert '"UpdatesHeld"' in metrics_output
    assert (replay.outcome, replay.body["replayed"]) == ("SUCCEEDED", True)
    assert (again.outcome, again.body["replayed"]) == ("SUCCEEDED", True)
    assert probe.applied() == 1
    assert probe.ledger_state() == "SUCCEEDED"
    assert counts == NO_FAILURES


def test_hold_does_not_retry_within_the_call_what_may_have_been_applied(
    handler: ModuleType, service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_policy(handler, monkeypatch, "HOLD")
    probe = Probe(service_env, handler)
    service_env.admin.add_fault(probe.request_id, "DROP_AFTER_APPLY", attempt=1)

    first = probe.call()
    second = probe.call()
    probe.resolve()
    final = probe.call()

    counts = probe.record(CATEGORY, "connection lost after apply on attempt 1 only", allowed_arrivals=1)
    # Under RESEND the client would retry at once and succeed; under HOLD it stops after attempt 1.
    assert (first.status, first.outcome) == (503, "UNKNOWN")
    assert (second.status, second.outcome) == (503, "UNKNOWN")
    assert probe.arrivals() == 1
    assert (final.status, final.outcome) == (200, "SUCCEEDED")
    assert counts == NO_FAILURES


def test_a_held_request_that_was_not_applied_is_reconciled_as_failed(
    handler: ModuleType, service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_policy(handler, monkeypatch, "HOLD")
    probe = Probe(service_env, handler)
    service_env.admin.add_fault(probe.request_id, "U_BEFORE_APPLY")

    first = probe.call()
    second = probe.call()
    probe.resolve()
    final = probe.call()
    ledger_view = call_api(handler, "GET", f"/budget-updates/{probe.request_id}").body

    counts = probe.record(CATEGORY, "U before apply, reconciled as not applied", allowed_arrivals=1)
    assert [(a.status, a.outcome) for a in (first, second)] == [(503, "UNKNOWN")] * 2
    assert (final.status, final.outcome, final.body["replayed"]) == (422, "FAILED", True)
    # The answer names the operator's decision, not the U that preceded it.
    assert "resultInfo" not in final.body
    assert "an operator recorded" in final.body["error"]["message"]
    assert ledger_view["resolution"]["applied"] == "false"
    assert probe.applied() == 0
    assert probe.arrivals() == 1
    assert counts == NO_FAILURES


def test_hold_answers_a_final_outcome_at_once_when_there_is_one(
    handler: ModuleType, service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_policy(handler, monkeypatch, "HOLD")
    ok = Probe(service_env, handler)
    closed = Probe(service_env, handler, template="DEMO-CLOSED", number=1)

    answers = [ok.call(), closed.call(), ok.call()]

    counts = [ok.record(CATEGORY, "no fault: S", allowed_arrivals=1), closed.record(CATEGORY, "no fault: F")]
    assert [(a.status, a.outcome) for a in answers] == [(200, "SUCCEEDED"), (409, "FAILED"), (200, "SUCCEEDED")]
    assert answers[2].body["replayed"] is True
    assert ok.applied() == 1
    assert counts == [NO_FAILURES, NO_FAILURES]


def test_hold_still_retries_at_once_an_attempt_that_never_left(credentials: Credentials, unused_port: int) -> None:
    """Nothing was sent (connection refused): retrying cannot apply anything twice, so HOLD retries too."""
    client = AlipayClient(f"http://127.0.0.1:{unused_port}", NO_WAIT_POLICY)
    body = json.dumps({"requestId": "never-left"}).encode()

    result = client.send(credentials, body, time.monotonic() + 10, resend_unknown=False)
    client.close()

    reasons = [a.reason for a in result.attempts]
    record(CATEGORY, "connection refused (nothing sent)", f"retried in the call: {len(reasons)} attempts, none sent")
    assert reasons == [Reason.NOT_SENT] * NO_WAIT_POLICY.max_attempts
    assert not result.may_have_been_applied
