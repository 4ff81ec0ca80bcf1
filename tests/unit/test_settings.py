"""Settings from the function environment: defaults, and a clear error for every bad value."""

from __future__ import annotations

import pytest

from ipass_budget.errors import ConfigurationError
from ipass_budget.settings import Settings, UnknownOutcomePolicy, trace_aws_calls

REQUIRED = {
    "LEDGER_TABLE_NAME": "ledger",
    "SIGNING_SECRET_ID": "signing",
    "IPASS_BASE_URL": "https://open.alipay.hk",
}


def test_defaults() -> None:
    settings = Settings.from_env(REQUIRED)
    assert (settings.ledger_table_name, settings.signing_secret_id) == ("ledger", "signing")
    assert settings.unknown_outcome_policy is UnknownOutcomePolicy.RESEND
    assert settings.retention_seconds == 7 * 86_400
    assert settings.retry.max_attempts == 3


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_a_missing_required_variable_is_named(name: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != name}
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("UNKNOWN_OUTCOME_POLICY", "MAYBE", "UNKNOWN_OUTCOME_POLICY must be RESEND or HOLD"),
        ("LEDGER_RETENTION_DAYS", "seven", "LEDGER_RETENTION_DAYS must be a number"),
        ("LEDGER_RETENTION_DAYS", "0", "LEDGER_RETENTION_DAYS must be between 1 and 365"),
        ("IPASS_MAX_ATTEMPTS", "11", "IPASS_MAX_ATTEMPTS must be between 1 and 10"),
        ("TRACE_AWS_CALLS", "yes", "TRACE_AWS_CALLS must be true or false"),
        ("IPASS_BASE_URL", "http://open.alipay.hk", "https"),
    ],
)
def test_a_bad_value_is_named_with_its_problem(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env({**REQUIRED, name: value})


@pytest.mark.parametrize(
    ("value", "expected"), [("", False), ("false", False), ("FALSE", False), ("true", True), (" True ", True)]
)
def test_trace_aws_calls(value: str, expected: bool) -> None:
    assert trace_aws_calls({"TRACE_AWS_CALLS": value}) is expected
    Settings.from_env({**REQUIRED, "TRACE_AWS_CALLS": value})  # accepted


def test_trace_aws_calls_is_off_when_unset() -> None:
    assert trace_aws_calls({}) is False
