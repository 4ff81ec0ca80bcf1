"""Service settings from the environment (contract section 2; optional ones listed in the README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ipass_budget.client import RetryPolicy, check_base_url
from ipass_budget.errors import ConfigurationError


class UnknownOutcomePolicy(StrEnum):
    RESEND = "RESEND"  # re-send the same requestId on the next call (AlipayHK: "retry or query")
    HOLD = "HOLD"  # never re-send a request that may have been applied; an operator reconciles it


@dataclass(frozen=True, slots=True)
class Settings:
    ledger_table_name: str
    signing_secret_id: str
    ipass_base_url: str
    retention_days: float = 7.0
    unknown_outcome_policy: UnknownOutcomePolicy = UnknownOutcomePolicy.RESEND
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    secret_cache_seconds: float = 300.0
    # Time kept back from the Lambda deadline to record the outcome and answer.
    response_reserve_seconds: float = 2.0

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * 86_400

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        missing = [n for n in ("LEDGER_TABLE_NAME", "SIGNING_SECRET_ID", "IPASS_BASE_URL") if not env.get(n)]
        if missing:
            raise ConfigurationError(f"environment lacks {', '.join(missing)}")
        policy = env.get("UNKNOWN_OUTCOME_POLICY", "RESEND").strip().upper()
        if policy not in tuple(UnknownOutcomePolicy):
            raise ConfigurationError("UNKNOWN_OUTCOME_POLICY must be RESEND or HOLD")
        trace_aws_calls(env)  # read by the handler's Tracer at import; a bad value is MISCONFIGURED here
        return cls(
            ledger_table_name=env["LEDGER_TABLE_NAME"],
            signing_secret_id=env["SIGNING_SECRET_ID"],
            ipass_base_url=check_base_url(env["IPASS_BASE_URL"]),
            retention_days=_number(env, "LEDGER_RETENTION_DAYS", 7.0, 1.0, 365.0),
            unknown_outcome_policy=UnknownOutcomePolicy(policy),
            retry=RetryPolicy(
                max_attempts=int(_number(env, "IPASS_MAX_ATTEMPTS", 3, 1, 10)),
                connect_timeout=_number(env, "IPASS_CONNECT_TIMEOUT_SECONDS", 3.0, 0.1, 20.0),
                read_timeout=_number(env, "IPASS_READ_TIMEOUT_SECONDS", 8.0, 0.1, 25.0),
                base_delay=_number(env, "IPASS_RETRY_BASE_DELAY_SECONDS", 0.25, 0.0, 5.0),
                max_delay=_number(env, "IPASS_RETRY_MAX_DELAY_SECONDS", 2.0, 0.0, 10.0),
                rate_limited_base_delay=_number(env, "IPASS_RATE_LIMITED_BASE_DELAY_SECONDS", 1.0, 0.0, 10.0),
            ),
            secret_cache_seconds=_number(env, "SECRET_CACHE_SECONDS", 300.0, 0.0, 86_400.0),
            response_reserve_seconds=_number(env, "RESPONSE_RESERVE_SECONDS", 2.0, 0.5, 10.0),
        )


def trace_aws_calls(environ: Mapping[str, str] | None = None) -> bool:
    """TRACE_AWS_CALLS: ``true`` or ``false`` (default), in any case: X-Ray subsegments for every
    DynamoDB and Secrets Manager call (the AlipayHK call is always traced)."""
    env = os.environ if environ is None else environ
    raw = env.get("TRACE_AWS_CALLS", "").strip().lower()
    if raw not in ("", "true", "false"):
        raise ConfigurationError(f"TRACE_AWS_CALLS must be true or false, got {raw[:20]!r}")
    return raw == "true"


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw[:20]!r}") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value
