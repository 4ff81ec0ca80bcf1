"""Issue 4 section 1: the function answers before the Lambda deadline, whatever its dependencies do.

Each test gives the handler a short LocalLambdaContext and makes one step slow or hanging: the
secret load, the claim, AlipayHK, the final ledger write, the secret re-read after a rotated key.
Hanging AWS calls are real hangs (the fault proxy holds the connection), so botocore's own
timeouts and retries are what is measured. Worst cases measured before the change (connect 2 s,
read 4 s, ``max_attempts`` 3, which botocore counts as 3 *retries*): 16 s per hanging AWS call,
39 s for a slow AlipayHK plus a hanging final write in a 25 s function.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget.client import AlipayClient
from ipass_budget.errors import DependencyUnavailableError
from ipass_budget.keys import private_key_pem, public_key_pem
from ipass_budget.ledger import Ledger
from ipass_budget.models import parse_budget_update
from ipass_budget.secret_source import SecretSource
from ipass_budget.service import BudgetService
from ipass_budget.settings import Settings
from ipass_local.api_gateway import LOCAL_CALLER_ARN
from ipass_sandbox.config import DEMO_CLIENT_ID
from tests.conftest import NO_WAIT_POLICY
from tests.reliability.aws_proxy import Action, AwsFaultProxy
from tests.reliability.support import NO_FAILURES, Probe, time_shifted
from tests.reliability_log import record
from tests.service.support import ServiceEnv, call_api, new_id, update

CONTEXT_SECONDS = 4.0
CATEGORY = "Deadline (4 s Lambda context unless stated)"


@pytest.fixture
def warm_handler(aws_proxy: AwsFaultProxy, handler: ModuleType) -> ModuleType:
    """The handler with its clients built (through the proxy): a cold start does not eat the short context."""
    handler.budget_service()
    return handler


def warm_secret(handler: ModuleType) -> None:
    """One successful call, so the handler's execution environment holds the secret."""
    assert call_api(handler, "POST", "/budget-updates", update(new_id(), 1)).status == 200


def test_a_hanging_secrets_manager_answers_503_in_time_and_sends_nothing(
    aws_proxy: AwsFaultProxy, warm_handler: ModuleType, service_env: ServiceEnv
) -> None:
    aws_proxy.add("secretsmanager.*", Action.HANG)
    probe = Probe(service_env, warm_handler)

    answer = probe.call(CONTEXT_SECONDS)

    counts = probe.record(CATEGORY, "Secrets Manager hangs", allowed_arrivals=0)
    assert answer.elapsed < CONTEXT_SECONDS
    assert (answer.status, answer.code) == (503, "DEPENDENCY_UNAVAILABLE")
    assert probe.ledger_state() is None
    assert aws_proxy.count("DynamoDB_*") == 0
    assert counts == NO_FAILURES


@pytest.mark.parametrize("path", ["api", "schedule"])
def test_a_hanging_claim_answers_503_in_time_and_sends_nothing(
    aws_proxy: AwsFaultProxy, warm_handler: ModuleType, service_env: ServiceEnv, path: str
) -> None:
    aws_proxy.add("DynamoDB_*.PutItem", Action.HANG)
    probe = Probe(service_env, warm_handler, path=path)

    answer = probe.call(CONTEXT_SECONDS)

    counts = probe.record(CATEGORY, f"claim (PutItem) hangs, {path}", allowed_arrivals=0)
    assert answer.elapsed < CONTEXT_SECONDS
    assert answer.code == "DEPENDENCY_UNAVAILABLE"
    assert answer.status == (503 if path == "api" else 0)  # the schedule path raises so Lambda retries
    # One attempt (1 s read timeout); botocore's retry would end past the 2 s left before the
    # reserve, so it is not started.
    assert aws_proxy.count("DynamoDB_*.PutItem") == 1
    assert probe.ledger_state() is None
    assert counts == NO_FAILURES


def test_a_hanging_alipay_is_504_in_time_and_the_outcome_is_recorded(
    aws_proxy: AwsFaultProxy, warm_handler: ModuleType, service_env: ServiceEnv
) -> None:
    probe = Probe(service_env, warm_handler)
    service_env.admin.add_fault(probe.request_id, "DELAY_AFTER_APPLY", delay_seconds=60)

    answer = probe.call(CONTEXT_SECONDS)

    assert probe.ledger_state() == "UNKNOWN"  # the final write fitted in the reserve
    service_env.admin.clear_faults()
    final = probe.converge()
    counts = probe.record(CATEGORY, "AlipayHK hangs (applied, answer late)")
    assert answer.elapsed < CONTEXT_SECONDS
    assert (answer.status, answer.outcome) == (504, "UNKNOWN")
    assert (final.status, final.outcome) == (200, "SUCCEEDED")
    assert probe.applied() == 1
    assert counts == NO_FAILURES


@pytest.mark.parametrize("alipay_slow", [False, True], ids=["alipay-fast", "alipay-hangs"])
def test_a_hanging_final_write_still_answers_in_time_and_converges_without_a_second_apply(
    aws_proxy: AwsFaultProxy, warm_handler: ModuleType, service_env: ServiceEnv, alipay_slow: bool
) -> None:
    probe = Probe(service_env, warm_handler)
    if alipay_slow:
        service_env.admin.add_fault(probe.request_id, "DELAY_AFTER_APPLY", attempt=1, delay_seconds=60)
    aws_proxy.add("DynamoDB_*.UpdateItem", Action.HANG)

    answer = probe.call(CONTEXT_SECONDS)

    assert probe.ledger_state() == "SENDING"  # not recorded: the lease decides what happens next
    aws_proxy.clear()
    in_progress = probe.call()
    with time_shifted(warm_handler, CONTEXT_SECONDS + 10):  # past the crashed invocation's lease
        final = probe.call()
    case = "final ledger write hangs after AlipayHK " + ("hung" if alipay_slow else "answered S")
    counts = probe.record(CATEGORY, case)
    assert answer.elapsed < CONTEXT_SECONDS
    # The answer is the truth: S when AlipayHK said so; unknown when its answer never came.
    assert (answer.status, answer.outcome) == ((504, "UNKNOWN") if alipay_slow else (200, "SUCCEEDED"))
    assert (in_progress.status, in_progress.code) == (409, "REQUEST_IN_PROGRESS")
    assert (final.status, final.outcome, final.body["replayed"]) == (200, "SUCCEEDED", False)
    assert probe.applied() == 1
    assert probe.ledger_state() == "SUCCEEDED"
    assert counts == NO_FAILURES


def test_a_hanging_secret_reread_after_a_rotated_key_answers_the_refusal_in_time(
    aws_proxy: AwsFaultProxy,
    warm_handler: ModuleType,
    service_env: ServiceEnv,
    spare_private_key: rsa.RSAPrivateKey,
) -> None:
    warm_secret(warm_handler)
    # The key is rotated: AlipayHK knows only the new key (version 2), Secrets Manager holds it too,
    # but Secrets Manager hangs when the function re-reads it.
    service_env.admin.register_key(DEMO_CLIENT_ID, "2", public_key_pem(spare_private_key))
    service_env.admin.remove_key(DEMO_CLIENT_ID, "1")
    service_env.put_secret({**service_env.secret, "privateKey": private_key_pem(spare_private_key), "keyVersion": "2"})
    aws_proxy.add("secretsmanager.*", Action.HANG)
    probe = Probe(service_env, warm_handler)

    answer = probe.call(CONTEXT_SECONDS)

    assert probe.ledger_state() == "NOT_APPLIED"
    aws_proxy.clear()
    final = probe.converge()
    counts = probe.record(CATEGORY, "secret re-read hangs after a rotated key")
    assert answer.elapsed < CONTEXT_SECONDS
    assert (answer.status, answer.code) == (502, "UPSTREAM_REJECTED")
    assert answer.body["resultInfo"]["resultCode"] == "KEY_NOT_FOUND"
    assert (final.status, final.outcome) == (200, "SUCCEEDED")
    assert probe.applied() == 1
    assert counts == NO_FAILURES


def test_too_little_time_left_claims_nothing_and_sends_nothing(
    aws_proxy: AwsFaultProxy, warm_handler: ModuleType, service_env: ServiceEnv
) -> None:
    warm_secret(warm_handler)
    claims_before = aws_proxy.count("DynamoDB_*")
    probe = Probe(service_env, warm_handler)

    # 2.4 s: the cached secret is there, but the 2 s reserve leaves AlipayHK less than one attempt.
    answer = probe.call(2.4)

    counts = probe.record(CATEGORY, "invocation starts with less than reserve + one attempt", allowed_arrivals=0)
    assert answer.elapsed < 2.4
    assert (answer.status, answer.code) == (503, "DEPENDENCY_UNAVAILABLE")
    assert aws_proxy.count("DynamoDB_*") == claims_before
    assert probe.ledger_state() is None
    assert counts == NO_FAILURES


def test_without_time_for_a_claim_and_a_write_after_it_nothing_is_claimed(
    aws_proxy: AwsFaultProxy, warm_handler: ModuleType, service_env: ServiceEnv
) -> None:
    probe = Probe(service_env, warm_handler)

    # 3 s: the secret comes, but a claim attempt (up to 1.5 s) followed by its release or the final
    # write (1.5 s) and the answer (0.25 s) could not end in time, so no claim is started.
    answer = probe.call(3.0)

    counts = probe.record(CATEGORY, "too little time for a claim and a write after it (3 s)", allowed_arrivals=0)
    assert answer.elapsed < 3.0
    assert (answer.status, answer.code) == (503, "DEPENDENCY_UNAVAILABLE")
    assert aws_proxy.count("secretsmanager.*") == 1
    assert aws_proxy.count("DynamoDB_*") == 0
    assert probe.ledger_state() is None
    assert counts == NO_FAILURES


def test_a_claim_that_took_alipays_time_is_released_and_nothing_is_sent(service_env: ServiceEnv) -> None:
    """The backstop after the claim, driven with a clock that a slow claim moves forward."""
    now = [0.0]
    settings = Settings.from_env(service_env.environ)
    ledger = Ledger(service_env.dynamodb(), service_env.table_name)
    real_claim = ledger.claim

    def slow_claim(*args: Any, **kwargs: Any) -> Any:
        claim = real_claim(*args, **kwargs)
        now[0] += 1.8  # of the 4 s, 2 s are the reserve: 0.2 s are left for AlipayHK
        return claim

    ledger.claim = slow_claim  # type: ignore[method-assign]
    client = AlipayClient(service_env.sandbox.url, NO_WAIT_POLICY, clock=lambda: now[0])
    service = BudgetService(
        settings,
        ledger,
        SecretSource(service_env.secretsmanager(), service_env.secret_id, 300),
        client,
        aws_attempt_seconds=1.5,
        monotonic=lambda: now[0],
    )
    request_id = new_id()
    request = parse_budget_update(update(request_id, 3))

    with pytest.raises(DependencyUnavailableError, match="DynamoDB"):
        service.submit(
            request, caller=LOCAL_CALLER_ARN, source="api", deadline=CONTEXT_SECONDS, lease_seconds=CONTEXT_SECONDS
        )

    item = service_env.ledger_item(request_id)
    state = item["state"]["S"] if item else None
    ledger.claim = real_claim  # type: ignore[method-assign]
    now[0] = 0.0
    again = service.submit(
        request, caller=LOCAL_CALLER_ARN, source="api", deadline=CONTEXT_SECONDS, lease_seconds=CONTEXT_SECONDS
    )
    client.close()
    arrivals = service_env.arrivals(request_id)
    record(CATEGORY, "claim leaves less than one AlipayHK attempt", f"released NOT_APPLIED, then {again.outcome}")
    assert state == "NOT_APPLIED"  # released at once: the next call does not wait for a lease
    assert (str(again.outcome), again.replayed) == ("SUCCEEDED", False)
    assert arrivals == 1


def test_the_reserve_always_holds_one_whole_ledger_write(handler: ModuleType, service_env: ServiceEnv) -> None:
    service = handler.budget_service()
    config = service.ledger._client.meta.config
    one_attempt = config.connect_timeout + config.read_timeout
    outcome = f"reserve {service.reserve_seconds:g} s, one AWS attempt {one_attempt:g} s + 0.25 s answer margin"
    record(CATEGORY, "the reserve holds one whole ledger write", outcome)
    assert config.retries["total_max_attempts"] == 2
    assert service.reserve_seconds >= one_attempt + 0.25
    assert service.reserve_seconds == 2.0  # RESPONSE_RESERVE_SECONDS' default already covers it
