"""HTTP client for AlipayHK updateBudget: one keep-alive session, deadline-bounded, safe retries.

Retry rules (alipay-protocol.md 6.4, reliability-notes.md 2.3-2.5):
- only UNKNOWN attempts are retried, always with the same body and so the same requestId; each
  attempt gets a fresh Request-Time and signature;
- capped exponential backoff with full jitter between attempts; a longer base when AlipayHK
  says REQUEST_TRAFFIC_EXCEED_LIMIT; no wait when the connection failed before anything was sent;
- never past the caller's deadline, and at most ``max_attempts`` attempts.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from ipass_budget import UPDATE_BUDGET_PATH
from ipass_budget.credentials import Credentials
from ipass_budget.errors import ConfigurationError
from ipass_budget.outcome import AttemptResult, Disposition, Reason
from ipass_budget.response import evaluate_response
from ipass_budget.signing import sign_request

USER_AGENT = "ipass-budget/0.1"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay: float = 0.25
    max_delay: float = 2.0
    rate_limited_base_delay: float = 1.0
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    # An attempt is not started with less time than this left before the deadline.
    min_attempt_time: float = 0.5

    def backoff(self, retry_number: int, reason: Reason, rng: Callable[[], float]) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(n-1))]; no wait if nothing was sent."""
        if reason is Reason.NOT_SENT:
            return 0.0
        base = self.rate_limited_base_delay if reason is Reason.RATE_LIMITED else self.base_delay
        # The exponent is bounded: 2**1024 no longer converts to float (OverflowError).
        cap: float = min(self.max_delay, base * 2 ** min(retry_number - 1, 64))
        return rng() * cap


@dataclass(frozen=True, slots=True)
class SendResult:
    """The last attempt decides; all attempts are kept for logs and metrics."""

    attempts: tuple[AttemptResult, ...]
    elapsed_seconds: float = 0.0

    @property
    def final(self) -> AttemptResult:
        return self.attempts[-1]

    @property
    def disposition(self) -> Disposition:
        return self.final.disposition

    @property
    def may_have_been_sent(self) -> bool:
        return any(a.may_have_been_sent for a in self.attempts)

    @property
    def may_have_been_applied(self) -> bool:
        return any(a.may_have_been_applied for a in self.attempts)


def check_base_url(base_url: str) -> str:
    """``https://host[:port]`` without a path; plain http only for a sandbox on this machine.

    "This machine" is loopback, or ``host.docker.internal``: the host as seen from the container
    that ``sam local invoke`` runs the function in.
    """
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigurationError("IPASS_BASE_URL must be an absolute https:// URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError("IPASS_BASE_URL must not carry a path, query or fragment")
    if parts.scheme == "http" and not _is_local(parts.hostname):
        raise ConfigurationError("IPASS_BASE_URL must use https (http is allowed only for a local sandbox)")
    return f"{parts.scheme}://{parts.netloc}"


def _is_local(host: str) -> bool:
    if host in ("localhost", "host.docker.internal"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AlipayClient:
    def __init__(
        self,
        base_url: str,
        policy: RetryPolicy | None = None,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = check_base_url(base_url) + UPDATE_BUDGET_PATH
        self.policy = policy or RetryPolicy()
        self._sleep, self._rng, self._clock = sleep, rng, clock
        self._session = session or _new_session()

    def close(self) -> None:
        self._session.close()

    def send(
        self, credentials: Credentials, body: bytes, deadline: float, *, resend_unknown: bool = True
    ) -> SendResult:
        """Send ``body`` until a non-UNKNOWN answer, the attempt budget, or ``deadline`` (monotonic).

        ``resend_unknown=False`` (HOLD policy) stops after an attempt that may have been applied:
        only attempts that certainly were not (nothing left this process) are retried.
        """
        attempts: list[AttemptResult] = []
        started = self._clock()
        while True:
            result = self._attempt(credentials, body, deadline)
            attempts.append(result)
            if result.disposition is not Disposition.UNKNOWN or len(attempts) >= self.policy.max_attempts:
                break
            if result.reason is Reason.NO_TIME_LEFT or (not resend_unknown and result.may_have_been_applied):
                break
            delay = self.policy.backoff(len(attempts), result.reason, self._rng)
            if self._clock() + delay + self.policy.min_attempt_time > deadline:
                break
            if delay:
                self._sleep(delay)
        return SendResult(tuple(attempts), self._clock() - started)

    def _attempt(self, credentials: Credentials, body: bytes, deadline: float) -> AttemptResult:
        remaining = deadline - self._clock()
        if remaining < self.policy.min_attempt_time:
            return AttemptResult(Disposition.UNKNOWN, Reason.NO_TIME_LEFT, detail="deadline reached")
        headers = sign_request(
            credentials.private_key, credentials.client_id, credentials.key_version, UPDATE_BUDGET_PATH, body
        )
        timeout = urllib3.Timeout(
            connect=min(self.policy.connect_timeout, remaining),
            read=min(self.policy.read_timeout, remaining),
            total=remaining,
        )
        try:
            response = self._session.post(
                self.url,
                data=body,
                headers=headers,
                # requests passes a urllib3 Timeout through unchanged; its total bounds the attempt.
                timeout=timeout,  # type: ignore[arg-type]
                allow_redirects=False,
            )
            content = response.content
        except requests.RequestException as exc:
            reason = failure_reason(exc)
            return AttemptResult(Disposition.UNKNOWN, reason, detail=f"{reason.value}: {type(exc).__name__}")
        return evaluate_response(
            http_status=response.status_code,
            headers=response.headers,
            body=content,
            path=UPDATE_BUDGET_PATH,
            client_id=credentials.client_id,
            alipay_public_key=credentials.alipay_public_key,
        )


def failure_reason(exc: requests.RequestException) -> Reason:
    """Whether a transport failure happened before anything was sent, or may have hidden an answer."""
    if isinstance(exc, requests.ConnectTimeout):
        return Reason.NOT_SENT
    if isinstance(exc, requests.Timeout):
        return Reason.TIMEOUT
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, urllib3.exceptions.MaxRetryError):
        cause = cause.reason
    if isinstance(cause, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
        return Reason.NOT_SENT  # refused, unresolvable or unreachable: the request never left
    if isinstance(cause, urllib3.exceptions.ReadTimeoutError):
        return Reason.TIMEOUT  # requests reports timeouts while reading the body as ConnectionError
    return Reason.CONNECTION_LOST


def _new_session() -> requests.Session:
    session = requests.Session()
    # No transport-level retries: this module decides what may be re-sent. TLS verification stays on.
    adapter = HTTPAdapter(max_retries=0, pool_connections=1, pool_maxsize=4)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = True
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    return session
