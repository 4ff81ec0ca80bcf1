"""``ipass_budget.client.AlipayClient`` against the sandbox for every injected fault.

What must hold for each fault: the client never reports SUCCEEDED or FAILED unless the sandbox
really answered so with a verified signature; every attempt re-sends the same body (hence the same
requestId); and the budget changes at most once, however many attempts reach the sandbox.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget.client import AlipayClient, RetryPolicy, SendResult
from ipass_budget.credentials import Credentials
from ipass_budget.models import BudgetUpdate, UpdateType
from ipass_budget.outcome import Disposition, Reason
from ipass_sandbox.admin_client import SandboxAdminClient
from ipass_sandbox.config import DEMO_MERCHANT_ACCOUNT_ID
from ipass_sandbox.faults import FaultKind
from ipass_sandbox.server import SandboxServer

pytestmark = pytest.mark.integration

NUMBER = 10
START_BUDGET = 1000  # DEMO-VALID
# Short enough to keep the delay tests fast, long enough for a loaded CI machine to answer normally.
SHORT_READ_TIMEOUT = 0.3


@dataclass(frozen=True)
class Expected:
    reason: Reason
    applied: bool  # whether the first arrival changes the budget


EXPECTED = {
    FaultKind.U_BEFORE_APPLY: Expected(Reason.STATUS_UNKNOWN, applied=False),
    FaultKind.U_AFTER_APPLY: Expected(Reason.STATUS_UNKNOWN, applied=True),
    FaultKind.HTTP_500_AFTER_APPLY: Expected(Reason.HTTP_STATUS, applied=True),
    FaultKind.HTTP_503_BEFORE_APPLY: Expected(Reason.HTTP_STATUS, applied=False),
    FaultKind.DROP_BEFORE_APPLY: Expected(Reason.CONNECTION_LOST, applied=False),
    FaultKind.DROP_AFTER_APPLY: Expected(Reason.CONNECTION_LOST, applied=True),
    FaultKind.DELAY_AFTER_APPLY: Expected(Reason.TIMEOUT, applied=True),
    FaultKind.CORRUPT_SIGNATURE: Expected(Reason.BAD_SIGNATURE, applied=True),
    FaultKind.UNSIGNED_SUCCESS: Expected(Reason.UNSIGNED_SUCCESS, applied=True),
    FaultKind.PARTLY_SIGNED: Expected(Reason.PARTLY_SIGNED, applied=True),
    FaultKind.TRAFFIC_LIMIT: Expected(Reason.RATE_LIMITED, applied=False),
}


def test_every_fault_kind_has_an_expectation() -> None:
    assert set(EXPECTED) == set(FaultKind)


def policy(max_attempts: int) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max_attempts,
        base_delay=0.0,
        max_delay=0.0,
        rate_limited_base_delay=0.0,
        read_timeout=SHORT_READ_TIMEOUT,
    )


ClientFactory = Callable[[str, RetryPolicy], AlipayClient]


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    """Clients that never sleep between attempts (backoff itself is tested once, below)."""
    clients: list[AlipayClient] = []

    def make(base_url: str, retry_policy: RetryPolicy) -> AlipayClient:
        client = AlipayClient(base_url, retry_policy, sleep=lambda _seconds: None)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def send(client: AlipayClient, credentials: Credentials, request_id: str, deadline_in: float = 20.0) -> SendResult:
    body = BudgetUpdate(request_id, DEMO_MERCHANT_ACCOUNT_ID, "DEMO-VALID", UpdateType.APPEND_BUDGET, NUMBER).to_body()
    return client.send(credentials, body, time.monotonic() + deadline_in)


def budget(admin: SandboxAdminClient) -> int:
    view = admin.template("DEMO-VALID")
    assert view is not None
    return int(view["budget"])


def fault_delay(kind: FaultKind) -> float | None:
    # Far longer than the client's read timeout; stop() at teardown interrupts the wait.
    return 30.0 if kind is FaultKind.DELAY_AFTER_APPLY else None


@pytest.mark.parametrize("kind", list(FaultKind))
def test_single_attempt_under_fault_is_unknown_never_final(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    make_client: ClientFactory,
    credentials: Credentials,
    kind: FaultKind,
) -> None:
    request_id = f"once-{kind}"
    sandbox_admin.add_fault(request_id, kind, delay_seconds=fault_delay(kind))

    outcome = send(make_client(sandbox.url, policy(max_attempts=1)), credentials, request_id)

    expected = EXPECTED[kind]
    assert len(outcome.attempts) == 1
    assert (outcome.disposition, outcome.final.reason) == (Disposition.UNKNOWN, expected.reason)
    assert outcome.may_have_been_sent
    record = sandbox_admin.request_record(request_id)
    assert (record["arrivals"], record["applied"]) == (1, expected.applied)
    assert budget(sandbox_admin) == START_BUDGET + (NUMBER if expected.applied else 0)


@pytest.mark.parametrize("kind", list(FaultKind))
def test_fault_on_first_attempt_is_resolved_by_resending_the_same_request(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    make_client: ClientFactory,
    credentials: Credentials,
    kind: FaultKind,
) -> None:
    request_id = f"first-{kind}"
    sandbox_admin.add_fault(request_id, kind, attempt=1, delay_seconds=fault_delay(kind))
    requests_before = sandbox_admin.stats()["requests"]

    outcome = send(make_client(sandbox.url, policy(max_attempts=3)), credentials, request_id)

    assert [a.disposition for a in outcome.attempts] == [Disposition.UNKNOWN, Disposition.SUCCEEDED]
    assert outcome.final.verified
    assert outcome.attempts[0].reason is EXPECTED[kind].reason
    record = sandbox_admin.request_record(request_id)
    # Both API requests carried this requestId: the retry re-sent the same body.
    assert record["arrivals"] == 2
    assert sandbox_admin.stats()["requests"] - requests_before == 2
    assert record["applied"]
    assert record["answer"]["resultInfo"]["resultStatus"] == "S"
    assert budget(sandbox_admin) == START_BUDGET + NUMBER  # exactly once


@pytest.mark.parametrize("kind", list(FaultKind))
def test_persistent_fault_exhausts_attempts_and_applies_at_most_once(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    make_client: ClientFactory,
    credentials: Credentials,
    kind: FaultKind,
) -> None:
    request_id = f"always-{kind}"
    sandbox_admin.add_fault(request_id, kind, delay_seconds=fault_delay(kind))
    client = make_client(sandbox.url, policy(max_attempts=3))

    outcome = send(client, credentials, request_id)

    assert [a.disposition for a in outcome.attempts] == [Disposition.UNKNOWN] * 3
    assert {a.reason for a in outcome.attempts} == {EXPECTED[kind].reason}
    record = sandbox_admin.request_record(request_id)
    assert record["arrivals"] == 3
    assert record["applied"] is EXPECTED[kind].applied
    assert budget(sandbox_admin) == START_BUDGET + (NUMBER if EXPECTED[kind].applied else 0)


def test_backoff_is_requested_between_attempts_not_slept(
    sandbox: SandboxServer, sandbox_admin: SandboxAdminClient, credentials: Credentials
) -> None:
    sleeps: list[float] = []
    retry_policy = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=1.0, read_timeout=5.0)
    client = AlipayClient(sandbox.url, retry_policy, sleep=sleeps.append, rng=lambda: 1.0)
    sandbox_admin.add_fault("backoff-1", FaultKind.U_BEFORE_APPLY)
    outcome = send(client, credentials, "backoff-1")
    client.close()
    assert len(outcome.attempts) == 3
    assert sleeps == [0.5, 1.0]  # full-jitter upper bounds with rng() == 1: base, then capped double


def test_business_failure_is_final_and_not_retried(
    sandbox: SandboxServer, sandbox_admin: SandboxAdminClient, make_client: ClientFactory, credentials: Credentials
) -> None:
    client = make_client(sandbox.url, policy(max_attempts=3))
    body = BudgetUpdate("closed-1", DEMO_MERCHANT_ACCOUNT_ID, "DEMO-CLOSED", UpdateType.APPEND_BUDGET, 1).to_body()
    outcome = client.send(credentials, body, time.monotonic() + 20)
    assert len(outcome.attempts) == 1
    assert outcome.disposition is Disposition.FAILED
    assert outcome.final.result_info is not None
    assert outcome.final.result_info.result_code == "PASS_TEMPLATE_STATUS_ILLEGAL"
    assert sandbox_admin.request_record("closed-1")["arrivals"] == 1


def test_gateway_rejection_is_rejected_not_failed(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    make_client: ClientFactory,
    credentials: Credentials,
    spare_private_key: rsa.RSAPrivateKey,
) -> None:
    # Signed with a key the sandbox does not know for this Client-Id: INVALID_SIGNATURE.
    stranger = Credentials(
        credentials.client_id,
        credentials.merchant_account_id,
        credentials.key_version,
        spare_private_key,
        credentials.alipay_public_key,
    )
    outcome = send(make_client(sandbox.url, policy(max_attempts=3)), stranger, "stranger-1")
    assert len(outcome.attempts) == 1
    assert outcome.disposition is Disposition.REJECTED
    assert outcome.final.verified
    assert budget(sandbox_admin) == START_BUDGET


def test_answer_signed_by_someone_else_is_never_success(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    make_client: ClientFactory,
    credentials: Credentials,
    spare_private_key: rsa.RSAPrivateKey,
) -> None:
    # The client trusts a different AlipayHK public key, so the sandbox's genuine S cannot verify.
    misled = Credentials(
        credentials.client_id,
        credentials.merchant_account_id,
        credentials.key_version,
        credentials.private_key,
        spare_private_key.public_key(),
    )
    outcome = send(make_client(sandbox.url, policy(max_attempts=2)), misled, "misled-1")
    assert [a.reason for a in outcome.attempts] == [Reason.BAD_SIGNATURE] * 2
    assert outcome.disposition is Disposition.UNKNOWN
    assert budget(sandbox_admin) == START_BUDGET + NUMBER  # applied once, although the client cannot tell


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
    # Closed on exit: nothing listens there, so connecting is refused.


def test_connection_refused_is_not_sent(make_client: ClientFactory, credentials: Credentials) -> None:
    outcome = send(make_client(f"http://127.0.0.1:{_closed_port()}", policy(max_attempts=2)), credentials, "refused")
    assert {a.reason for a in outcome.attempts} == {Reason.NOT_SENT}
    assert outcome.disposition is Disposition.UNKNOWN
    assert not outcome.may_have_been_sent


def test_deadline_in_the_past_sends_nothing(
    sandbox: SandboxServer, sandbox_admin: SandboxAdminClient, credentials: Credentials
) -> None:
    client = AlipayClient(sandbox.url, RetryPolicy(max_attempts=3), sleep=lambda _seconds: None)
    outcome = send(client, credentials, "late-1", deadline_in=-1.0)
    client.close()
    assert [a.reason for a in outcome.attempts] == [Reason.NO_TIME_LEFT]
    assert not outcome.may_have_been_sent
    assert sandbox_admin.stats()["requests"] == 0
    assert sandbox_admin.request_record("late-1")["arrivals"] == 0
