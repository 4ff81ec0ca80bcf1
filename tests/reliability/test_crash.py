"""Issue 4 section 3 (reliability-notes 4.4): the process dies between two steps, the request is driven again.

A child process (its own Lambda execution environment) runs the real handler and exits with
``os._exit(137)`` at one step boundary. The same request is then driven again in this process,
first while the dead invocation's lease still holds (409, nothing sent), then after it.

Time passes without sleeping: ``time_shifted`` moves the wall clock that the service and the
ledger read (the lease is the only time rule involved) by more than the lease, and leaves the
ledger item exactly as the dead process wrote it.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
from types import ModuleType

import pytest

from ipass_budget import UPDATE_BUDGET_PATH
from ipass_local.api_gateway import LOCAL_CALLER_ARN, proxy_event
from ipass_sandbox.exchange import Reply, Request
from tests.reliability.support import NO_FAILURES, Answer, Probe, set_policy, time_shifted
from tests.reliability.workers import KILLED, STEPS, invoke_and_die
from tests.service.support import ServiceEnv, update

# The dead invocation's lease: its 25 s of Lambda time plus the 5 s margin. Shifting further ends it.
PAST_THE_LEASE_SECONDS = 60.0
APPLIED_BEFORE_THE_CRASH = {
    "before_claim": False,
    "after_claim": False,
    "after_alipay_answered": True,
    "while_alipay_applies": True,
}


def crash_child(env: ServiceEnv, probe: Probe, step: str, policy: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the request in a child process that dies at ``step``; return its exit code."""
    context = multiprocessing.get_context("spawn")
    kill = context.Event()
    applying = threading.Event()
    if step == "while_alipay_applies":
        # AlipayHK applies the change, then holds its answer; we kill the caller meanwhile.
        env.admin.add_fault(probe.request_id, "DELAY_AFTER_APPLY", attempt=1, delay_seconds=30)
        route = env.sandbox.route

        def watching_route(request: Request) -> Reply:
            reply = route(request)
            if request.path == UPDATE_BUDGET_PATH and reply.delay > 0:
                applying.set()
            return reply

        monkeypatch.setattr(env.sandbox, "route", watching_route)
    body = json.dumps(update(probe.request_id, probe.number, template=probe.template)).encode()
    event = proxy_event("POST", "/budget-updates", {"Content-Type": "application/json"}, body, LOCAL_CALLER_ARN)
    environ = {**env.environ, "UNKNOWN_OUTCOME_POLICY": policy}
    child = context.Process(target=invoke_and_die, args=(environ, event, step, kill))
    child.start()
    if step == "while_alipay_applies":
        assert applying.wait(60), "the request never reached AlipayHK"
        kill.set()
    child.join(60)
    return child.exitcode if child.exitcode is not None else -1


@pytest.mark.parametrize("policy", ["RESEND", "HOLD"])
@pytest.mark.parametrize("step", STEPS)
def test_a_crash_between_steps_never_applies_twice_and_the_ledger_converges(
    handler: ModuleType, service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch, step: str, policy: str
) -> None:
    probe = Probe(service_env, handler, number=11)

    exit_code = crash_child(service_env, probe, step, policy, monkeypatch)

    crashed_state = probe.ledger_state()
    applied_at_crash = probe.applied()
    arrivals_at_crash = probe.arrivals()
    service_env.admin.clear_faults()
    set_policy(handler, monkeypatch, policy)
    answers: list[Answer] = []
    if crashed_state is not None:
        answers.append(probe.call())  # the dead invocation's lease still holds
    with time_shifted(handler, PAST_THE_LEASE_SECONDS):
        answers.append(probe.call())
    answers.append(probe.call())
    held = policy == "HOLD" and crashed_state is not None
    if held:
        probe.resolve()  # the operator reconciles with what AlipayHK did
        answers.append(probe.call())

    outcome = f"exit {exit_code}, ledger {crashed_state}; then " + ", ".join(a.label for a in answers)
    counts = probe.record(f"Crash between steps ({policy})", step.replace("_", " "), outcome)
    assert exit_code == KILLED
    assert crashed_state == (None if step == "before_claim" else "SENDING")
    assert applied_at_crash == int(APPLIED_BEFORE_THE_CRASH[step])
    assert arrivals_at_crash == int(APPLIED_BEFORE_THE_CRASH[step])
    if crashed_state is not None:
        assert (answers[0].status, answers[0].code) == (409, "REQUEST_IN_PROGRESS")
    if held:
        # Never re-sent: still UNKNOWN until reconciled, then final as AlipayHK had it.
        assert [(a.status, a.outcome) for a in answers[1:3]] == [(503, "UNKNOWN")] * 2
        assert probe.arrivals() == arrivals_at_crash
        assert probe.applied() == applied_at_crash
        assert answers[-1].outcome == ("SUCCEEDED" if applied_at_crash else "FAILED")
        assert answers[-1].body["replayed"] is True
    else:
        assert [(a.status, a.outcome) for a in answers[-2:]] == [(200, "SUCCEEDED")] * 2
        assert answers[-1].body["replayed"] is True
        assert probe.applied() == 1
        assert probe.ledger_state() == "SUCCEEDED"
    assert probe.ledger_state() == ("SUCCEEDED" if probe.applied() else "FAILED")
    assert counts == NO_FAILURES
