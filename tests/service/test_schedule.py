"""The EventBridge Scheduler path (contract section 5)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from ipass_budget.schedule import schedule_request_id
from ipass_local.lambda_context import LocalLambdaContext
from tests.service.support import ServiceEnv, call_api, new_id

SCHEDULE_ARN = "arn:aws:scheduler:ap-east-1:123456789012:schedule/default/ipass-topup"


def schedule_event(number: int = 500, template: str = "DEMO-VALID", **extra: Any) -> dict[str, Any]:
    return {
        "templateCode": template,
        "updateType": "APPEND_BUDGET",
        "number": number,
        "schedule": {"arn": SCHEDULE_ARN, "scheduledTime": f"2026-12-04T01:00:00Z-{new_id()}"},
        **extra,
    }


def invoke(handler: ModuleType, event: dict[str, Any]) -> Any:
    return handler.lambda_handler(event, LocalLambdaContext())


def test_a_schedule_occurrence_applies_once_however_often_it_is_delivered(
    handler: ModuleType, service_env: ServiceEnv
) -> None:
    event = schedule_event(500)
    before = service_env.budget()

    first = invoke(handler, event)
    second = invoke(handler, event)

    request_id = schedule_request_id(event["schedule"]["arn"], event["schedule"]["scheduledTime"])
    assert first["requestId"] == second["requestId"] == request_id
    assert (first["outcome"], first["replayed"]) == ("SUCCEEDED", False)
    assert (second["outcome"], second["replayed"]) == ("SUCCEEDED", True)
    assert service_env.budget() == before + 500
    assert service_env.arrivals(request_id) == 1
    record = call_api(handler, "GET", f"/budget-updates/{request_id}").body
    assert record["source"] == "schedule"
    assert record["caller"] == f"schedule:{SCHEDULE_ARN}"


def test_the_derived_request_id_is_deterministic_and_valid() -> None:
    a = schedule_request_id(SCHEDULE_ARN, "2026-12-04T01:00:00Z")
    assert a == schedule_request_id(SCHEDULE_ARN, "2026-12-04T01:00:00Z")
    assert a != schedule_request_id(SCHEDULE_ARN, "2026-12-05T01:00:00Z")
    assert a != schedule_request_id(SCHEDULE_ARN + "x", "2026-12-04T01:00:00Z")
    assert len(a) <= 128
    assert all("\x21" <= ch <= "\x7e" for ch in a)


def test_an_unknown_outcome_raises_so_lambda_retries_and_the_retry_applies_once(
    handler: ModuleType, service_env: ServiceEnv
) -> None:
    event = schedule_event(30)
    request_id = schedule_request_id(event["schedule"]["arn"], event["schedule"]["scheduledTime"])
    service_env.admin.add_fault(request_id, "U_AFTER_APPLY")
    before = service_env.budget()

    with pytest.raises(handler.ScheduledUpdateNotFinalError, match="OUTCOME_UNKNOWN"):
        invoke(handler, event)

    service_env.admin.clear_faults()
    retried = invoke(handler, event)
    assert (retried["outcome"], retried["replayed"]) == ("SUCCEEDED", False)
    assert service_env.budget() == before + 30


def test_a_final_failure_is_returned_not_raised(handler: ModuleType, service_env: ServiceEnv) -> None:
    answer = invoke(handler, schedule_event(1, template="DEMO-CLOSED"))
    assert answer["outcome"] == "FAILED"
    assert answer["error"]["code"] == "UPSTREAM_FAILED"
    assert answer["resultInfo"]["resultCode"] == "PASS_TEMPLATE_STATUS_ILLEGAL"


BASE_INPUT = {"templateCode": "DEMO-VALID", "updateType": "APPEND_BUDGET", "number": 1}
WELL_FORMED_SCHEDULE = {"arn": "a", "scheduledTime": "t"}


@pytest.mark.parametrize(
    "event",
    [
        {**BASE_INPUT, "schedule": "x"},
        {**BASE_INPUT, "number": 0, "schedule": WELL_FORMED_SCHEDULE},
        {**BASE_INPUT, "schedule": {"arn": "a"}},
        {**BASE_INPUT, "requestId": "mine", "schedule": WELL_FORMED_SCHEDULE},
    ],
)
def test_invalid_schedule_input_raises_and_sends_nothing(
    handler: ModuleType, service_env: ServiceEnv, event: dict[str, Any]
) -> None:
    with pytest.raises(handler.ScheduledUpdateNotFinalError, match="invalid schedule input"):
        invoke(handler, event)
    assert service_env.admin.stats()["requests"] == 0


def test_dependency_failure_raises(
    handler: ModuleType, service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch, unused_port: int
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{unused_port}")
    handler.budget_service.cache_clear()
    with pytest.raises(handler.ScheduledUpdateNotFinalError, match="DEPENDENCY_UNAVAILABLE"):
        invoke(handler, schedule_event(1))
    assert service_env.admin.stats()["requests"] == 0
