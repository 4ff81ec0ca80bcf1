"""AlipayClient without a sandbox: backoff, base-URL checks, transport-failure mapping, the retry loop.

Time is fake throughout: ``FakeClock`` is both the injected monotonic clock and the injected sleep, so
no test waits.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import urllib3
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from ipass_budget import UPDATE_BUDGET_PATH, signing
from ipass_budget.client import AlipayClient, RetryPolicy, SendResult, check_base_url, failure_reason
from ipass_budget.credentials import Credentials
from ipass_budget.errors import ConfigurationError
from ipass_budget.outcome import AttemptResult, Disposition, Reason
from ipass_budget.signing import parse_signature_header, signing_content, verify

BASE = "https://open.alipay.hk"
POLICY = RetryPolicy()  # defaults: 3 attempts, base 0.25 s, cap 2 s, rate-limited base 1 s


# --- RetryPolicy.backoff ----------------------------------------------------------------------------

RETRIED_REASONS = [r for r in Reason if r not in (Reason.NOT_SENT, Reason.ANSWERED)]


@given(
    retry=st.integers(min_value=1, max_value=2000),
    reason=st.sampled_from(RETRIED_REASONS),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_backoff_is_full_jitter_under_a_capped_exponential(retry: int, reason: Reason, draw: float) -> None:
    base = POLICY.rate_limited_base_delay if reason is Reason.RATE_LIMITED else POLICY.base_delay
    cap = min(POLICY.max_delay, base * 2 ** min(retry - 1, 64))
    delay = POLICY.backoff(retry, reason, lambda: draw)
    assert 0.0 <= delay <= POLICY.max_delay
    assert delay == pytest.approx(draw * cap)


@pytest.mark.parametrize(
    ("retry", "expected"),
    [(1, 0.25), (2, 0.5), (3, 1.0), (4, 2.0), (5, 2.0), (30, 2.0)],
)
def test_backoff_upper_bound_doubles_up_to_the_cap(retry: int, expected: float) -> None:
    assert POLICY.backoff(retry, Reason.TIMEOUT, lambda: 1.0) == expected
    assert POLICY.backoff(retry, Reason.TIMEOUT, lambda: 0.0) == 0.0


@pytest.mark.parametrize("retry", [1, 2, 3])
def test_rate_limited_answers_back_off_longer(retry: int) -> None:
    limited = POLICY.backoff(retry, Reason.RATE_LIMITED, lambda: 1.0)
    assert limited == min(POLICY.max_delay, POLICY.rate_limited_base_delay * 2 ** (retry - 1))
    assert limited > POLICY.backoff(retry, Reason.STATUS_UNKNOWN, lambda: 1.0)


@given(retry=st.integers(min_value=1, max_value=10**6))
def test_nothing_sent_means_no_wait(retry: int) -> None:
    assert POLICY.backoff(retry, Reason.NOT_SENT, lambda: 1.0) == 0.0


# --- check_base_url ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://open.alipay.hk", "https://open.alipay.hk"),
        ("https://open.alipay.hk/", "https://open.alipay.hk"),
        (" https://open.alipay.hk ", "https://open.alipay.hk"),
        ("https://dev.example.com:8443", "https://dev.example.com:8443"),
        ("http://127.0.0.1:8780", "http://127.0.0.1:8780"),
        ("http://127.9.9.9", "http://127.9.9.9"),
        ("http://localhost:8780/", "http://localhost:8780"),
        ("http://[::1]:8780", "http://[::1]:8780"),
    ],
)
def test_base_url_accepted(url: str, expected: str) -> None:
    assert check_base_url(url) == expected
    assert AlipayClient(url, session=requests.Session()).url == expected + UPDATE_BUDGET_PATH


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://open.alipay.hk", "https"),
        ("http://10.0.0.1:8780", "https"),
        ("http://0.0.0.0:8780", "https"),
        ("http://localhost.example.com", "https"),
        ("http://127.0.0.1.example.com", "https"),
        ("ftp://open.alipay.hk", "https"),
        ("open.alipay.hk", "https"),
        ("https://", "https"),
        ("", "https"),
        ("https://open.alipay.hk/api/open/alipay/v1/ipass/template/manage/updateBudget", "path"),
        ("https://open.alipay.hk/gateway", "path"),
        ("https://open.alipay.hk?x=1", "query"),
        ("https://open.alipay.hk#top", "fragment"),
    ],
)
def test_base_url_refused(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match="IPASS_BASE_URL") as caught:
        check_base_url(url)
    assert problem in str(caught.value)


# --- failure_reason ---------------------------------------------------------------------------------

POOL = urllib3.HTTPConnectionPool("open.alipay.hk", 443)
CONN = urllib3.connection.HTTPConnection("open.alipay.hk", 443)


def _wrapped(error: Exception) -> MaxRetryError:
    return MaxRetryError(POOL, UPDATE_BUDGET_PATH, error)


FAILURES: dict[str, tuple[requests.RequestException, Reason]] = {
    "connect timeout": (
        requests.ConnectTimeout(_wrapped(ConnectTimeoutError(CONN, "timed out"))),
        Reason.NOT_SENT,
    ),
    "connection refused": (
        requests.ConnectionError(_wrapped(NewConnectionError(CONN, "Connection refused"))),
        Reason.NOT_SENT,
    ),
    "DNS failure": (
        requests.ConnectionError(
            _wrapped(NameResolutionError("open.alipay.hk", CONN, socket.gaierror("no such host")))
        ),
        Reason.NOT_SENT,
    ),
    "connect timeout reported as ConnectionError": (
        requests.ConnectionError(_wrapped(ConnectTimeoutError(CONN, "timed out"))),
        Reason.NOT_SENT,
    ),
    "read timeout": (
        requests.ReadTimeout(ReadTimeoutError(POOL, UPDATE_BUDGET_PATH, "read timed out")),
        Reason.TIMEOUT,
    ),
    "plain Timeout": (requests.Timeout("timed out"), Reason.TIMEOUT),
    "read timeout while reading the body": (
        requests.ConnectionError(ReadTimeoutError(POOL, UPDATE_BUDGET_PATH, "read timed out")),
        Reason.TIMEOUT,
    ),
    "connection reset after sending": (
        requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))),
        Reason.CONNECTION_LOST,
    ),
    "remote closed without answering": (
        requests.ConnectionError(_wrapped(ProtocolError("Connection aborted.", OSError("closed")))),
        Reason.CONNECTION_LOST,
    ),
    # An SSLError may come from the handshake (nothing sent) or from a later read: stay conservative.
    "TLS error": (
        requests.exceptions.SSLError(_wrapped(urllib3.exceptions.SSLError("certificate verify failed"))),
        Reason.CONNECTION_LOST,
    ),
    "body cut short": (requests.exceptions.ChunkedEncodingError("incomplete read"), Reason.CONNECTION_LOST),
    "bare ConnectionError": (requests.ConnectionError(), Reason.CONNECTION_LOST),
    "other RequestException": (requests.RequestException("odd"), Reason.CONNECTION_LOST),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_failure_reason(name: str) -> None:
    exc, reason = FAILURES[name]
    assert failure_reason(exc) is reason


@pytest.fixture
def refused_port() -> int:
    """A loopback port nobody listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def hang_up_server() -> Iterator[int]:
    """A loopback server that reads the request and closes the connection without answering."""
    listener = socket.create_server(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    thread.join(timeout=5)
    listener.close()


def test_real_refused_connection_is_not_sent(refused_port: int) -> None:
    with pytest.raises(requests.RequestException) as caught:
        requests.post(f"http://127.0.0.1:{refused_port}/", data=b"{}", timeout=5)
    assert failure_reason(caught.value) is Reason.NOT_SENT


def test_real_hang_up_after_sending_is_connection_lost(hang_up_server: int) -> None:
    with requests.Session() as session, pytest.raises(requests.RequestException) as caught:
        session.post(f"http://127.0.0.1:{hang_up_server}/", data=b"{}", timeout=5)
    assert failure_reason(caught.value) is Reason.CONNECTION_LOST


# --- the retry loop ---------------------------------------------------------------------------------


@dataclass
class FakeClock:
    """Monotonic clock and sleep in one: sleeping advances the clock, and so does each request."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Call:
    url: str
    body: bytes
    headers: dict[str, str]
    timeout: Any
    allow_redirects: bool


class FakeSession(requests.Session):
    """Answers posts from a script of responses or exceptions, recording each call."""

    def __init__(self, script: list[requests.Response | Exception], clock: FakeClock, latency: float = 0.1) -> None:
        super().__init__()
        self.script = list(script)
        self.calls: list[Call] = []
        self.clock = clock
        self.latency = latency

    def post(self, url: str | bytes, data: Any = None, json: Any = None, **kwargs: Any) -> requests.Response:
        self.calls.append(Call(str(url), data, dict(kwargs["headers"]), kwargs["timeout"], kwargs["allow_redirects"]))
        self.clock.now += self.latency
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


@pytest.fixture
def wall_clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """Make each Request-Time one second later than the previous one (it has second precision)."""
    handed_out: list[datetime] = []

    class SteppingDateTime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> SteppingDateTime:
            moment = cls(2024, 5, 22, 6, 42, 21, tzinfo=UTC) + timedelta(seconds=len(handed_out))
            handed_out.append(moment)
            return moment

    monkeypatch.setattr(signing, "datetime", SteppingDateTime)
    return handed_out


@dataclass
class Harness:
    client: AlipayClient
    session: FakeSession
    clock: FakeClock


@pytest.fixture
def make_client() -> Callable[..., Harness]:
    def build(
        script: list[requests.Response | Exception], policy: RetryPolicy = POLICY, *, rng_value: float = 0.5
    ) -> Harness:
        clock = FakeClock()
        session = FakeSession(script, clock)
        client = AlipayClient(BASE, policy, session=session, sleep=clock.sleep, rng=lambda: rng_value, clock=clock)
        return Harness(client, session, clock)

    return build


BODY = b'{"requestId":"r-1","merchantAccountId":"2160","templateCode":"T1","updateType":"APPEND_BUDGET","number":5}'


def _json(status: str, code: str) -> bytes:
    return b'{"resultInfo":{"resultCode":"%s","resultStatus":"%s","resultMsg":""}}' % (code.encode(), status.encode())


def test_retries_unknown_with_the_same_body_and_a_fresh_signature(
    make_client: Callable[..., Harness],
    answer: Callable[..., requests.Response],
    credentials: Credentials,
    partner_public_key: rsa.RSAPublicKey,
    wall_clock: list[datetime],
) -> None:
    harness = make_client(
        [
            answer(_json("U", "UNKNOWN_EXCEPTION")),
            requests.ConnectionError(ProtocolError("Connection aborted.", ConnectionResetError())),
            answer(_json("S", "SUCCESS")),
        ]
    )
    result = harness.client.send(credentials, BODY, deadline=harness.clock.now + 30)
    assert result.disposition is Disposition.SUCCEEDED
    assert [a.reason for a in result.attempts] == [Reason.STATUS_UNKNOWN, Reason.CONNECTION_LOST, Reason.ANSWERED]
    calls = harness.session.calls
    assert len(calls) == 3
    assert all(call.body == BODY for call in calls)  # identical bytes, so the same requestId, every time
    assert all(call.url == BASE + UPDATE_BUDGET_PATH and call.allow_redirects is False for call in calls)
    times = [call.headers["Request-Time"] for call in calls]
    assert len(set(times)) == 3
    assert len({call.headers["Signature"] for call in calls}) == 3
    for call in calls:
        assert call.headers["Client-Id"] == credentials.client_id
        assert call.headers["Content-Type"] == "application/json; charset=UTF-8"
        parsed = parse_signature_header(call.headers["Signature"])
        assert parsed.key_version == credentials.key_version
        content = signing_content("POST", UPDATE_BUDGET_PATH, credentials.client_id, call.headers["Request-Time"], BODY)
        assert verify(partner_public_key, content, parsed.signature)
    # Backoff: the first retry draws from [0, 0.25], the second from [0, 0.5]; rng gives the midpoint.
    assert harness.clock.sleeps == [0.125, 0.25]


@pytest.mark.parametrize(
    ("status", "code", "disposition"),
    [
        ("S", "SUCCESS", Disposition.SUCCEEDED),
        ("F", "PARAM_ILLEGAL", Disposition.FAILED),
        ("F", "PASS_TEMPLATE_HAS_NOT_EXIT", Disposition.FAILED),
        ("F", "INVALID_SIGNATURE", Disposition.REJECTED),
    ],
)
def test_stops_at_the_first_answer_that_is_not_unknown(
    make_client: Callable[..., Harness],
    answer: Callable[..., requests.Response],
    credentials: Credentials,
    status: str,
    code: str,
    disposition: Disposition,
) -> None:
    harness = make_client([answer(_json(status, code)), answer(_json("S", "SUCCESS"))])
    result = harness.client.send(credentials, BODY, deadline=harness.clock.now + 30)
    assert result.disposition is disposition
    assert len(harness.session.calls) == 1
    assert harness.clock.sleeps == []
    assert result.final.verified


@pytest.mark.parametrize("max_attempts", [1, 2, 3, 5])
def test_respects_max_attempts(
    make_client: Callable[..., Harness],
    answer: Callable[..., requests.Response],
    credentials: Credentials,
    max_attempts: int,
) -> None:
    policy = RetryPolicy(max_attempts=max_attempts)
    harness = make_client([answer(_json("U", "UNKNOWN_EXCEPTION")) for _ in range(10)], policy)
    result = harness.client.send(credentials, BODY, deadline=harness.clock.now + 300)
    assert len(harness.session.calls) == max_attempts
    assert len(result.attempts) == max_attempts
    assert len(harness.clock.sleeps) == max_attempts - 1
    assert result.disposition is Disposition.UNKNOWN
    assert result.may_have_been_sent


def test_rate_limited_answers_wait_on_the_longer_base(
    make_client: Callable[..., Harness], answer: Callable[..., requests.Response], credentials: Credentials
) -> None:
    harness = make_client(
        [answer(_json("U", "REQUEST_TRAFFIC_EXCEED_LIMIT")), answer(_json("S", "SUCCESS"))], rng_value=1.0
    )
    result = harness.client.send(credentials, BODY, deadline=harness.clock.now + 30)
    assert result.disposition is Disposition.SUCCEEDED
    assert harness.clock.sleeps == [POLICY.rate_limited_base_delay]


def test_not_sent_is_retried_at_once_and_reported_as_not_sent(
    make_client: Callable[..., Harness], credentials: Credentials
) -> None:
    refused = requests.ConnectionError(_wrapped(NewConnectionError(CONN, "Connection refused")))
    harness = make_client([refused, refused, refused], rng_value=1.0)
    result = harness.client.send(credentials, BODY, deadline=harness.clock.now + 30)
    assert len(harness.session.calls) == 3
    assert harness.clock.sleeps == []
    assert [a.reason for a in result.attempts] == [Reason.NOT_SENT] * 3
    assert not result.may_have_been_sent
    assert result.final.detail == "NOT_SENT: ConnectionError"


def test_does_not_start_an_attempt_after_the_deadline(
    make_client: Callable[..., Harness], credentials: Credentials
) -> None:
    harness = make_client([])
    result = harness.client.send(credentials, BODY, deadline=harness.clock.now + 0.1)  # < min_attempt_time
    assert harness.session.calls == []
    assert [(a.disposition, a.reason) for a in result.attempts] == [(Disposition.UNKNOWN, Reason.NO_TIME_LEFT)]
    assert not result.may_have_been_sent


def test_does_not_wait_past_the_deadline(
    make_client: Callable[..., Harness], answer: Callable[..., requests.Response], credentials: Credentials
) -> None:
    # Each request takes 0.1 s. After the first, 1.0 s remain: a 0.25 s wait plus the 0.5 s minimum attempt
    # time fits; after the second, 0.65 s remain and a 0.5 s wait plus 0.5 s does not.
    harness = make_client([answer(_json("U", "UNKNOWN_EXCEPTION")) for _ in range(5)], rng_value=1.0)
    deadline = harness.clock.now + 1.1
    result = harness.client.send(credentials, BODY, deadline=deadline)
    assert len(harness.session.calls) == 2
    assert harness.clock.sleeps == [0.25]
    assert harness.clock.now <= deadline
    assert result.disposition is Disposition.UNKNOWN


def test_each_attempt_is_bounded_by_the_time_left(
    make_client: Callable[..., Harness], answer: Callable[..., requests.Response], credentials: Credentials
) -> None:
    harness = make_client([answer(_json("U", "UNKNOWN_EXCEPTION")), answer(_json("S", "SUCCESS"))], rng_value=0.0)
    start = harness.clock.now
    harness.client.send(credentials, BODY, deadline=start + 4.0)
    first, second = (call.timeout for call in harness.session.calls)
    assert isinstance(first, urllib3.Timeout)
    assert (first.connect_timeout, first.total) == (POLICY.connect_timeout, 4.0)
    assert first.read_timeout == pytest.approx(4.0)  # min(read_timeout 10, total 4)
    assert second.total == pytest.approx(3.9)  # the first request took 0.1 s


def test_timeouts_are_retried_and_stay_unknown(make_client: Callable[..., Harness], credentials: Credentials) -> None:
    timeout = requests.ReadTimeout(ReadTimeoutError(POOL, UPDATE_BUDGET_PATH, "read timed out"))
    harness = make_client([timeout, timeout, timeout])
    result = harness.client.send(credentials, BODY, deadline=harness.clock.now + 30)
    assert [a.reason for a in result.attempts] == [Reason.TIMEOUT] * 3
    assert result.final.detail.startswith("TIMEOUT")
    assert result.may_have_been_sent


def test_unverifiable_success_is_retried(
    make_client: Callable[..., Harness],
    answer: Callable[..., requests.Response],
    credentials: Credentials,
    partner_key: rsa.RSAPrivateKey,
) -> None:
    harness = make_client([answer(_json("S", "SUCCESS"), key=partner_key), answer(_json("S", "SUCCESS"))])
    result = harness.client.send(credentials, BODY, deadline=harness.clock.now + 30)
    assert [a.reason for a in result.attempts] == [Reason.BAD_SIGNATURE, Reason.ANSWERED]
    assert result.disposition is Disposition.SUCCEEDED


def test_send_result_reports_the_last_attempt() -> None:
    first = AttemptResult(Disposition.UNKNOWN, Reason.NOT_SENT)
    last = AttemptResult(Disposition.FAILED, Reason.ANSWERED)
    result = SendResult((first, last))
    assert (result.final, result.disposition, result.may_have_been_sent) == (last, Disposition.FAILED, True)


def test_default_session_verifies_tls_and_never_retries_by_itself() -> None:
    client = AlipayClient(BASE)
    try:
        session = client._session
        assert session.verify is True
        for prefix in ("https://", "http://"):
            adapter = session.get_adapter(prefix + "open.alipay.hk")
            assert isinstance(adapter, requests.adapters.HTTPAdapter)
            assert adapter.max_retries.total == 0
    finally:
        client.close()


def test_plain_http_is_allowed_for_the_docker_host_name_used_by_sam_local() -> None:
    assert check_base_url("http://host.docker.internal:8780") == "http://host.docker.internal:8780"
