"""Issue 4 section 4, AWS half: Secrets Manager and DynamoDB unreachable, throttled, failing, and failing
on the final write after AlipayHK answered; malformed secrets; keys rotated while the function holds
the old ones.

Faults come from the proxy in front of moto (tests/reliability/aws_proxy.py: real sockets, real
botocore retries). Every answer must be the contract's, nothing may reach AlipayHK when the answer
says so, and a later call must converge without a second apply.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget.keys import private_key_pem, public_key_base64, public_key_pem
from ipass_sandbox.config import DEMO_CLIENT_ID
from tests.reliability.aws_proxy import Action, AwsFaultProxy
from tests.reliability.support import NO_FAILURES, Answer, Probe, set_policy, time_shifted
from tests.reliability_log import record
from tests.service.support import ServiceEnv, call_api, new_id, update

PAST_THE_LEASE_SECONDS = 60.0
DEPENDENCY = (503, "DEPENDENCY_UNAVAILABLE")

# Faults that leave nothing sent: the answer is 503 DEPENDENCY_UNAVAILABLE (the schedule path raises).
BEFORE_SENDING = [
    ("Secrets Manager unreachable (connection closed)", "secretsmanager.*", Action.DROP),
    ("Secrets Manager throttled (ThrottlingException)", "secretsmanager.*", Action.THROTTLE),
    ("Secrets Manager HTTP 500", "secretsmanager.*", Action.HTTP_500),
    ("DynamoDB unreachable on the claim", "DynamoDB_*.PutItem", Action.DROP),
    ("DynamoDB throttled on the claim (ProvisionedThroughputExceeded)", "DynamoDB_*.PutItem", Action.THROTTLE),
    ("DynamoDB HTTP 500 on the claim", "DynamoDB_*.PutItem", Action.HTTP_500),
]


def code_of(answer: Answer) -> tuple[int, str | None]:
    return (answer.status, answer.code)


@pytest.mark.parametrize("path", ["api", "schedule"])
@pytest.mark.parametrize(("case", "target", "action"), BEFORE_SENDING, ids=[c[0] for c in BEFORE_SENDING])
def test_an_aws_dependency_down_before_sending_answers_503_and_sends_nothing(
    aws_proxy: AwsFaultProxy,
    handler: ModuleType,
    service_env: ServiceEnv,
    case: str,
    target: str,
    action: Action,
    path: str,
) -> None:
    aws_proxy.add(target, action)
    probe = Probe(service_env, handler, path=path)

    failed = probe.call()
    arrivals = probe.arrivals()
    state = probe.ledger_state()
    aws_proxy.clear()
    final = probe.converge()

    counts = probe.record(f"AWS fault before sending ({path})", case)
    assert failed.code == "DEPENDENCY_UNAVAILABLE"
    assert failed.status == (503 if path == "api" else 0)
    assert arrivals == 0
    assert state is None
    assert aws_proxy.count(target, str(action)) == 2  # botocore retried once, then gave up
    assert (final.status, final.outcome) == (200, "SUCCEEDED")
    assert probe.applied() == 1
    assert counts == NO_FAILURES


TRANSIENT = [
    ("Secrets Manager throttled once", "secretsmanager.*", Action.THROTTLE),
    ("DynamoDB throttled once on the claim", "DynamoDB_*.PutItem", Action.THROTTLE),
    ("DynamoDB claim written, its answer lost once", "DynamoDB_*.PutItem", Action.DROP_AFTER_FORWARD),
    ("DynamoDB final write written, its answer lost once", "DynamoDB_*.UpdateItem", Action.DROP_AFTER_FORWARD),
]


@pytest.mark.parametrize(("case", "target", "action"), TRANSIENT, ids=[c[0] for c in TRANSIENT])
def test_a_transient_aws_fault_is_absorbed_by_one_sdk_retry(
    aws_proxy: AwsFaultProxy, handler: ModuleType, service_env: ServiceEnv, case: str, target: str, action: Action
) -> None:
    aws_proxy.add(target, action, times=1)
    probe = Probe(service_env, handler)

    answer = probe.call()
    replay = probe.call()

    counts = probe.record("AWS fault, transient", case)
    assert aws_proxy.count(target, str(action)) == 1
    assert (answer.status, answer.outcome) == (200, "SUCCEEDED")
    # A lost claim answer: the retry finds its own lease token. A lost final-write answer: the
    # write is there (the retry's condition fails, the answer is still the truth).
    assert (replay.status, replay.outcome, replay.body["replayed"]) == (200, "SUCCEEDED", True)
    assert probe.arrivals() == 1
    assert probe.applied() == 1
    assert counts == NO_FAILURES


# Throttling on both paths and policies; the other failures on the API path (same code after it).
FINAL_WRITE = [
    *[("throttled", Action.THROTTLE, path, policy) for path in ("api", "schedule") for policy in ("RESEND", "HOLD")],
    *[(case, action, "api", policy) for case, action in [("HTTP 500", Action.HTTP_500), ("unreachable", Action.DROP)]
      for policy in ("RESEND", "HOLD")],
]  # fmt: skip


@pytest.mark.parametrize(("case", "action", "path", "policy"), FINAL_WRITE)
def test_the_final_write_failing_after_alipay_answered_keeps_the_answer_true_and_converges_once(
    aws_proxy: AwsFaultProxy,
    handler: ModuleType,
    service_env: ServiceEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    action: Action,
    path: str,
    policy: str,
) -> None:
    set_policy(handler, monkeypatch, policy)
    aws_proxy.add("DynamoDB_*.UpdateItem", action)
    probe = Probe(service_env, handler, path=path)

    answer = probe.call()
    state = probe.ledger_state()
    output = capsys.readouterr().out
    aws_proxy.clear()
    in_progress = probe.call()  # the lease of the call whose write failed still holds
    with time_shifted(handler, PAST_THE_LEASE_SECONDS):
        after_lease = probe.call()
    if policy == "HOLD":
        probe.resolve()
    final = probe.call()

    allowed = 1 if policy == "HOLD" else None
    counts = probe.record(f"AWS fault on the final ledger write ({policy}, {path})", case, allowed_arrivals=allowed)
    assert answer.outcome == "SUCCEEDED"  # AlipayHK said S: that is the answer, recorded or not
    assert answer.status == 200
    assert '"LedgerWriteFailed"' in output
    assert state == "SENDING"
    assert in_progress.code == "REQUEST_IN_PROGRESS"
    if policy == "RESEND":
        # Re-sent with the same requestId; AlipayHK answers its first answer and changes nothing.
        assert (after_lease.outcome, after_lease.body["replayed"]) == ("SUCCEEDED", False)
        assert probe.arrivals() == 2
    else:
        assert after_lease.code == "OUTCOME_UNKNOWN"  # might have been applied: held, not re-sent
        assert probe.arrivals() == 1
    assert (final.outcome, final.body["replayed"]) == ("SUCCEEDED", True)
    assert probe.applied() == 1
    assert probe.ledger_state() == "SUCCEEDED"
    assert counts == NO_FAILURES


def test_the_final_write_failing_after_a_final_failure_keeps_it_failed(
    aws_proxy: AwsFaultProxy, handler: ModuleType, service_env: ServiceEnv
) -> None:
    aws_proxy.add("DynamoDB_*.UpdateItem", Action.THROTTLE)
    probe = Probe(service_env, handler, template="DEMO-CLOSED", number=1)

    answer = probe.call()
    aws_proxy.clear()
    with time_shifted(handler, PAST_THE_LEASE_SECONDS):
        after_lease = probe.call()

    counts = probe.record("AWS fault on the final ledger write (RESEND, api)", "throttled after AlipayHK said F")
    assert (answer.status, answer.outcome) == (409, "FAILED")
    assert (after_lease.status, after_lease.outcome) == (409, "FAILED")
    assert probe.ledger_state() == "FAILED"
    assert probe.applied() == 0
    assert counts == NO_FAILURES


@pytest.mark.parametrize("policy", ["RESEND", "HOLD"])
def test_a_claim_written_whose_answer_never_came_is_taken_over_after_its_lease(
    aws_proxy: AwsFaultProxy,
    handler: ModuleType,
    service_env: ServiceEnv,
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
) -> None:
    set_policy(handler, monkeypatch, policy)
    aws_proxy.add("DynamoDB_*.PutItem", Action.DROP_AFTER_FORWARD)
    probe = Probe(service_env, handler)

    failed = probe.call()
    state = probe.ledger_state()
    aws_proxy.clear()
    in_progress = probe.call()
    with time_shifted(handler, PAST_THE_LEASE_SECONDS):
        after_lease = probe.call()
    if policy == "HOLD":
        probe.resolve()
    final = probe.call()

    counts = probe.record(
        f"AWS fault, claim written but its answer lost ({policy})", "every attempt", allowed_arrivals=1
    )
    assert code_of(failed) == DEPENDENCY
    assert state == "SENDING"  # written, but this invocation never learnt it: nothing was sent
    assert in_progress.code == "REQUEST_IN_PROGRESS"
    if policy == "RESEND":
        assert (after_lease.status, after_lease.outcome) == (200, "SUCCEEDED")
        assert probe.applied() == 1
    else:
        # HOLD cannot tell "claimed, then died" from "claimed, sent, then died": it holds, the
        # operator finds nothing applied and records it as not applied.
        assert after_lease.code == "OUTCOME_UNKNOWN"
        assert probe.applied() == 0
        assert final.outcome == "FAILED"
    assert probe.arrivals() == (1 if policy == "RESEND" else 0)
    assert counts == NO_FAILURES


def test_a_throttled_ledger_read_answers_503(
    aws_proxy: AwsFaultProxy, handler: ModuleType, service_env: ServiceEnv
) -> None:
    request_id = new_id()
    call_api(handler, "POST", "/budget-updates", update(request_id, 1))
    aws_proxy.add("DynamoDB_*.GetItem", Action.THROTTLE)

    answer = call_api(handler, "GET", f"/budget-updates/{request_id}")

    record("AWS fault, ledger read (GET)", "DynamoDB throttled", f"{answer.status} {answer.body['error']['code']}")
    assert (answer.status, answer.body["error"]["code"]) == DEPENDENCY


MALFORMED_SECRETS: list[tuple[str, Any]] = [
    ("not JSON", "not json"),
    ("a JSON array", "[1, 2]"),
    ("fields missing", '{"clientId": "C"}'),
    ("unparsable keys", {"privateKey": "bm90IGEga2V5", "alipayPublicKey": "bm90"}),
    ("unsupported algorithm", {"algorithm": "ECC224"}),
    ("keyVersion not a number", {"keyVersion": "v2"}),
]


@pytest.mark.parametrize(("case", "secret"), MALFORMED_SECRETS, ids=[c[0] for c in MALFORMED_SECRETS])
def test_a_malformed_secret_is_500_misconfigured_and_sends_nothing(
    aws_proxy: AwsFaultProxy, handler: ModuleType, service_env: ServiceEnv, case: str, secret: Any
) -> None:
    service_env.put_secret({**service_env.secret, **secret} if isinstance(secret, dict) else secret)
    probe = Probe(service_env, handler)

    answer = probe.call()

    counts = probe.record("Malformed signing secret", case, allowed_arrivals=0, settled=False)
    assert code_of(answer) == (500, "MISCONFIGURED")
    assert "PRIVATE KEY" not in str(answer.body)
    assert probe.ledger_state() is None
    assert service_env.admin.stats()["requests"] == 0
    assert counts == NO_FAILURES


def warm(handler: ModuleType, template: str = "DEMO-PAUSED") -> None:
    """One call on another template, so the execution environment caches the current secret."""
    call_api(handler, "POST", "/budget-updates", update(new_id(), 1, template=template))


@pytest.mark.parametrize("policy", ["RESEND", "HOLD"])
@pytest.mark.parametrize("new_version", [True, False], ids=["new-keyVersion", "same-keyVersion"])
def test_a_key_rotated_mid_flight_is_reread_once_and_the_call_succeeds(
    aws_proxy: AwsFaultProxy,
    handler: ModuleType,
    service_env: ServiceEnv,
    monkeypatch: pytest.MonkeyPatch,
    spare_private_key: rsa.RSAPrivateKey,
    new_version: bool,
    policy: str,
) -> None:
    set_policy(handler, monkeypatch, policy)
    warm(handler)
    version = "2" if new_version else "1"
    # The operator rotates: AlipayHK gets the new public key (and, under a new version, loses the
    # old one), Secrets Manager the new private key. This execution environment still holds the old.
    service_env.admin.register_key(DEMO_CLIENT_ID, version, public_key_pem(spare_private_key))
    if new_version:
        service_env.admin.remove_key(DEMO_CLIENT_ID, "1")
    service_env.put_secret(
        {**service_env.secret, "privateKey": private_key_pem(spare_private_key), "keyVersion": version}
    )
    reads_before = aws_proxy.count("secretsmanager.GetSecretValue")
    probe = Probe(service_env, handler)

    answer = probe.call()

    case = f"key rotated under {'a new' if new_version else 'the same'} keyVersion ({policy})"
    counts = probe.record("Signing key rotated mid-flight", case, allowed_arrivals=1)
    assert (answer.status, answer.outcome, answer.body["replayed"]) == (200, "SUCCEEDED", False)
    assert aws_proxy.count("secretsmanager.GetSecretValue") == reads_before + 1  # re-read once
    assert probe.arrivals() == 1  # the refused attempt never reached the budget logic
    assert probe.applied() == 1
    assert counts == NO_FAILURES


def test_a_key_rotated_at_alipay_before_secrets_manager_is_a_retryable_refusal(
    aws_proxy: AwsFaultProxy, handler: ModuleType, service_env: ServiceEnv, spare_private_key: rsa.RSAPrivateKey
) -> None:
    warm(handler)
    service_env.admin.register_key(DEMO_CLIENT_ID, "2", public_key_pem(spare_private_key))
    service_env.admin.remove_key(DEMO_CLIENT_ID, "1")
    probe = Probe(service_env, handler)

    refused = probe.call()  # Secrets Manager still has the old key: re-read, same key, refusal stands
    state = probe.ledger_state()
    service_env.put_secret({**service_env.secret, "privateKey": private_key_pem(spare_private_key), "keyVersion": "2"})
    final = probe.converge()

    counts = probe.record("Signing key rotated mid-flight", "AlipayHK rotated first, Secrets Manager later")
    assert (refused.status, refused.code) == (502, "UPSTREAM_REJECTED")
    assert refused.body["resultInfo"]["resultCode"] == "KEY_NOT_FOUND"
    assert state == "NOT_APPLIED"
    assert (final.status, final.outcome, final.body["replayed"]) == (200, "SUCCEEDED", False)
    assert probe.applied() == 1
    assert counts == NO_FAILURES


def test_a_secret_broken_during_rotation_keeps_the_refusal_and_sends_nothing_more(
    aws_proxy: AwsFaultProxy, handler: ModuleType, service_env: ServiceEnv, spare_private_key: rsa.RSAPrivateKey
) -> None:
    warm(handler)
    service_env.admin.register_key(DEMO_CLIENT_ID, "1", public_key_pem(spare_private_key))
    service_env.put_secret("{not json")
    probe = Probe(service_env, handler)

    refused = probe.call()
    state = probe.ledger_state()
    service_env.put_secret({**service_env.secret, "privateKey": private_key_pem(spare_private_key)})
    final = probe.converge()

    counts = probe.record("Signing key rotated mid-flight", "secret unreadable when re-read")
    assert (refused.status, refused.code) == (502, "UPSTREAM_REJECTED")
    assert state == "NOT_APPLIED"  # recorded, not left SENDING
    assert (final.status, final.outcome) == (200, "SUCCEEDED")
    assert probe.applied() == 1
    assert counts == NO_FAILURES


@pytest.mark.parametrize("policy", ["RESEND", "HOLD"])
def test_alipays_own_key_rotated_is_unknown_then_reread(
    aws_proxy: AwsFaultProxy,
    handler: ModuleType,
    service_env: ServiceEnv,
    monkeypatch: pytest.MonkeyPatch,
    spare_private_key: rsa.RSAPrivateKey,
    sandbox_private_key: rsa.RSAPrivateKey,
    policy: str,
) -> None:
    """The function holds a stale alipayPublicKey: AlipayHK's signed S does not verify (UNKNOWN)."""
    set_policy(handler, monkeypatch, policy)
    service_env.put_secret({**service_env.secret, "alipayPublicKey": public_key_base64(spare_private_key)})
    warm(handler)  # caches the stale key (that call ends UNKNOWN; another template)
    service_env.put_secret({**service_env.secret, "alipayPublicKey": public_key_base64(sandbox_private_key)})
    probe = Probe(service_env, handler)

    first = probe.call()
    if policy == "HOLD":
        probe.resolve()
    final = probe.converge()

    counts = probe.record("AlipayHK's key rotated mid-flight", f"stale alipayPublicKey ({policy})")
    if policy == "RESEND":
        # Three unverifiable answers, one re-read, the same requestId again: verified, applied once.
        assert (first.status, first.outcome) == (200, "SUCCEEDED")
    else:
        assert (first.status, first.code) == (503, "OUTCOME_UNKNOWN")  # never re-sent under HOLD
        assert probe.arrivals() == 1
    assert final.outcome == "SUCCEEDED"
    assert probe.applied() == 1
    assert counts == NO_FAILURES
