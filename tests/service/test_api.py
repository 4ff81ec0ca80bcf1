"""Every row of the contract's status table, through the real handler, moto server and the sandbox."""

from __future__ import annotations

import json
import time
from types import ModuleType
from typing import Any

import pytest

from ipass_budget.ledger import Ledger
from ipass_budget.models import BudgetUpdate, UpdateType
from ipass_local.api_gateway import LOCAL_CALLER_ARN
from ipass_sandbox.config import DEMO_CLIENT_ID, DEMO_MERCHANT_ACCOUNT_ID
from tests.service.support import ServiceEnv, call_api, new_id, update


def post(handler: ModuleType, body: Any, **kwargs: Any) -> Any:
    return call_api(handler, "POST", "/budget-updates", body, **kwargs)


def test_append_succeeds_changes_the_budget_and_is_recorded(handler: ModuleType, service_env: ServiceEnv) -> None:
    request_id = new_id()
    before = service_env.budget()

    answer = post(handler, update(request_id, 100))

    assert answer.status == 200
    assert answer.body["outcome"] == "SUCCEEDED"
    assert answer.body["replayed"] is False
    assert answer.body["resultInfo"]["resultStatus"] == "S"
    assert answer.body["tracerId"]
    assert "error" not in answer.body
    assert service_env.budget() == before + 100
    record = call_api(handler, "GET", f"/budget-updates/{request_id}")
    assert record.status == 200
    assert record.body["state"] == "SUCCEEDED"
    assert record.body["outcome"] == "SUCCEEDED"
    assert record.body["attempts"] == 1
    assert record.body["caller"] == LOCAL_CALLER_ARN
    assert record.body["merchantAccountId"] == DEMO_MERCHANT_ACCOUNT_ID  # the secret's default
    assert record.body["number"] == 100
    assert record.body["createdAt"] <= record.body["updatedAt"]


def test_subtract_succeeds(handler: ModuleType, service_env: ServiceEnv) -> None:
    before = service_env.budget()
    answer = post(handler, update(new_id(), 50, kind="SUBTRACT_BUDGET"))
    assert (answer.status, answer.body["outcome"]) == (200, "SUCCEEDED")
    assert service_env.budget() == before - 50


def test_a_replay_returns_the_stored_answer_and_sends_nothing(handler: ModuleType, service_env: ServiceEnv) -> None:
    request_id = new_id()
    first = post(handler, update(request_id, 7))
    before = service_env.budget()

    second = post(handler, update(request_id, 7))

    assert second.status == 200
    assert second.body["replayed"] is True
    assert second.body["resultInfo"] == first.body["resultInfo"]
    assert second.body["tracerId"] == first.body["tracerId"]
    assert service_env.budget() == before
    assert service_env.arrivals(request_id) == 1


def test_base64_encoded_body_is_accepted(handler: ModuleType, service_env: ServiceEnv) -> None:
    before = service_env.budget()
    answer = post(handler, update(new_id(), 3), base64_body=True)
    assert (answer.status, answer.body["outcome"]) == (200, "SUCCEEDED")
    assert service_env.budget() == before + 3


def test_explicit_merchant_account_id_is_forwarded(handler: ModuleType, service_env: ServiceEnv) -> None:
    body = {**update(new_id(), 1), "merchantAccountId": "2160999999999999"}
    answer = post(handler, body)
    # The demo template belongs to another merchant, so AlipayHK does not find it for this one.
    assert answer.status == 404
    assert answer.body["resultInfo"]["resultCode"] == "PASS_TEMPLATE_HAS_NOT_EXIT"


def test_same_request_id_with_another_payload_is_refused(handler: ModuleType, service_env: ServiceEnv) -> None:
    request_id = new_id()
    post(handler, update(request_id, 10))
    before = service_env.budget()

    answer = post(handler, update(request_id, 11))

    assert answer.status == 422
    assert answer.body["error"]["code"] == "REQUEST_ID_REUSED"
    assert answer.body["requestId"] == request_id
    assert "outcome" not in answer.body
    assert service_env.budget() == before
    assert service_env.arrivals(request_id) == 1


def test_a_request_in_flight_elsewhere_gets_409(handler: ModuleType, service_env: ServiceEnv) -> None:
    request_id = new_id()
    ledger = Ledger(service_env.dynamodb(), service_env.table_name)
    update_ = BudgetUpdate(request_id, DEMO_MERCHANT_ACCOUNT_ID, "DEMO-VALID", UpdateType.APPEND_BUDGET, 5)
    assert ledger.claim(update_, "arn:aws:iam::000000000000:user/other", "api", lease_seconds=60).token

    answer = post(handler, update(request_id, 5))

    assert answer.status == 409
    assert answer.body["error"]["code"] == "REQUEST_IN_PROGRESS"
    assert 1 <= int(answer.headers["Retry-After"]) <= 30
    assert service_env.admin.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("template", "kind", "number", "status", "code"),
    [
        ("DEMO-FULL", "APPEND_BUDGET", 11, 400, "PARAM_ILLEGAL"),  # final stock over 1,000,000
        ("DEMO-VALID", "SUBTRACT_BUDGET", 901, 400, "PARAM_ILLEGAL"),  # below the 100 issued cards
        ("NO-SUCH-TEMPLATE", "APPEND_BUDGET", 1, 404, "PASS_TEMPLATE_HAS_NOT_EXIT"),
        ("DEMO-CLOSED", "APPEND_BUDGET", 1, 409, "PASS_TEMPLATE_STATUS_ILLEGAL"),
        ("DEMO-EXPIRED", "SUBTRACT_BUDGET", 1, 409, "PASS_TEMPLATE_STATUS_ILLEGAL"),
    ],
)
def test_final_failures_map_to_their_status_and_are_replayed(
    handler: ModuleType, service_env: ServiceEnv, template: str, kind: str, number: int, status: int, code: str
) -> None:
    request_id = new_id()
    answer = post(handler, update(request_id, number, template=template, kind=kind))

    assert answer.status == status
    assert answer.body["outcome"] == "FAILED"
    assert answer.body["error"]["code"] == "UPSTREAM_FAILED"
    assert answer.body["resultInfo"]["resultCode"] == code
    replay = post(handler, update(request_id, number, template=template, kind=kind))
    assert (replay.status, replay.body["replayed"]) == (status, True)
    assert service_env.arrivals(request_id) == 1
    assert call_api(handler, "GET", f"/budget-updates/{request_id}").body["state"] == "FAILED"


def test_other_final_failures_give_422(handler: ModuleType, service_env: ServiceEnv) -> None:
    request_id = new_id()
    # AlipayHK already holds this requestId with another payload: it answers F REPEAT_REQ_INCONSISTENT.
    first = post(handler, update(request_id, 1))
    assert first.status == 200
    service_env.dynamodb().delete_item(TableName=service_env.table_name, Key={"requestId": {"S": request_id}})

    answer = post(handler, update(request_id, 2))

    assert answer.status == 422
    assert answer.body["outcome"] == "FAILED"
    assert answer.body["error"]["code"] == "UPSTREAM_FAILED"
    assert answer.body["resultInfo"]["resultCode"] == "REPEAT_REQ_INCONSISTENT"


def test_rejected_before_processing_is_502_and_retryable_once_fixed(
    handler: ModuleType, service_env: ServiceEnv, spare_private_key: Any, client_private_key: Any
) -> None:
    from ipass_budget.keys import public_key_pem

    request_id = new_id()
    before = service_env.budget()
    # AlipayHK holds another public key for this client: every signature is refused.
    service_env.admin.register_key(DEMO_CLIENT_ID, "1", public_key_pem(spare_private_key))

    answer = post(handler, update(request_id, 9))

    assert answer.status == 502
    assert answer.body["outcome"] == "FAILED"
    assert answer.body["error"]["code"] == "UPSTREAM_REJECTED"
    assert answer.body["resultInfo"]["resultCode"] == "INVALID_SIGNATURE"
    assert call_api(handler, "GET", f"/budget-updates/{request_id}").body["state"] == "NOT_APPLIED"
    assert service_env.budget() == before

    service_env.admin.register_key(DEMO_CLIENT_ID, "1", public_key_pem(client_private_key))
    retry = post(handler, update(request_id, 9))

    assert (retry.status, retry.body["outcome"], retry.body["replayed"]) == (200, "SUCCEEDED", False)
    assert service_env.budget() == before + 9


def test_unknown_key_version_is_rejected(handler: ModuleType, service_env: ServiceEnv) -> None:
    service_env.put_secret({**service_env.secret, "keyVersion": "7"})
    answer = post(handler, update(new_id(), 1))
    assert answer.status == 502
    assert answer.body["resultInfo"]["resultCode"] == "KEY_NOT_FOUND"


@pytest.mark.parametrize("fault", ["U_AFTER_APPLY", "HTTP_500_AFTER_APPLY", "CORRUPT_SIGNATURE", "UNSIGNED_SUCCESS"])
def test_unknown_outcome_is_503_then_resolved_by_calling_again(
    handler: ModuleType, service_env: ServiceEnv, fault: str
) -> None:
    request_id = new_id()
    before = service_env.budget()
    service_env.admin.add_fault(request_id, fault)  # every attempt

    answer = post(handler, update(request_id, 4))

    assert answer.status == 503
    assert answer.body["outcome"] == "UNKNOWN"
    assert answer.body["error"]["code"] == "OUTCOME_UNKNOWN"
    assert int(answer.headers["Retry-After"]) > 0
    assert call_api(handler, "GET", f"/budget-updates/{request_id}").body["state"] == "UNKNOWN"

    service_env.admin.clear_faults()
    resolved = post(handler, update(request_id, 4))

    assert (resolved.status, resolved.body["outcome"], resolved.body["replayed"]) == (200, "SUCCEEDED", False)
    assert service_env.budget() == before + 4  # applied exactly once
    record = call_api(handler, "GET", f"/budget-updates/{request_id}").body
    assert record["state"] == "SUCCEEDED"
    assert record["attempts"] == 4  # three attempts in the first call, one in the second


def test_fault_on_first_attempt_only_is_retried_within_the_call(handler: ModuleType, service_env: ServiceEnv) -> None:
    request_id = new_id()
    before = service_env.budget()
    service_env.admin.add_fault(request_id, "U_AFTER_APPLY", attempt=1)

    answer = post(handler, update(request_id, 6))

    assert (answer.status, answer.body["outcome"]) == (200, "SUCCEEDED")
    assert service_env.budget() == before + 6
    assert service_env.arrivals(request_id) == 2


def test_timeout_is_504(handler: ModuleType, service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPASS_READ_TIMEOUT_SECONDS", "0.3")
    monkeypatch.setenv("IPASS_MAX_ATTEMPTS", "1")
    handler.budget_service.cache_clear()
    request_id = new_id()
    before = service_env.budget()
    service_env.admin.add_fault(request_id, "DELAY_AFTER_APPLY", attempt=1, delay_seconds=3)

    answer = post(handler, update(request_id, 8))

    assert answer.status == 504
    assert answer.body["outcome"] == "UNKNOWN"
    resolved = post(handler, update(request_id, 8))
    assert (resolved.status, resolved.body["outcome"]) == (200, "SUCCEEDED")
    assert service_env.budget() == before + 8


def test_the_deadline_bounds_the_call(handler: ModuleType, service_env: ServiceEnv) -> None:
    request_id = new_id()
    service_env.admin.add_fault(request_id, "DELAY_AFTER_APPLY", delay_seconds=10)
    started = time.monotonic()

    answer = post(handler, update(request_id, 1), timeout_seconds=5.0)

    # 5 s of Lambda time, 2 s kept back to record and answer: AlipayHK gets at most ~3 s. (The claim
    # needs 3.25 s left, its worst case plus one write's: a 4 s context minus a slow cold start may not.)
    assert time.monotonic() - started < 5.0
    assert answer.status == 504
    assert answer.body["outcome"] == "UNKNOWN"


def test_traffic_limit_is_unknown(handler: ModuleType, service_env: ServiceEnv) -> None:
    request_id = new_id()
    service_env.admin.add_fault(request_id, "TRAFFIC_LIMIT")
    answer = post(handler, update(request_id, 1))
    assert answer.status == 503
    assert answer.body["resultInfo"]["resultCode"] == "REQUEST_TRAFFIC_EXCEED_LIMIT"
    assert answer.body["outcome"] == "UNKNOWN"


INVALID_BODIES: list[tuple[Any, set[str]]] = [
    ({"templateCode": "T", "updateType": "APPEND_BUDGET", "number": 1}, {"requestId"}),
    ({**update("r1"), "extra": 1}, {"extra"}),
    ({**update("r1"), "number": "5"}, {"number"}),
    ({**update("r1"), "number": 1.0}, {"number"}),
    ({**update("r1"), "number": True}, {"number"}),
    ({**update("r1"), "number": 0}, {"number"}),
    ({**update("r1"), "number": 1_000_000}, {"number"}),
    ({**update("r1"), "updateType": "OVERRIDE_BUDGET"}, {"updateType"}),
    ({**update("r1"), "requestId": "has space"}, {"requestId"}),
    ({**update("r1"), "requestId": "x" * 129}, {"requestId"}),
    ({**update("r1"), "templateCode": "T" * 33}, {"templateCode"}),
    ({**update("r1"), "merchantAccountId": "m" * 65}, {"merchantAccountId"}),
    ({**update("r1"), "merchantAccountId": ""}, {"merchantAccountId"}),
    ([update("r1")], {"body"}),
    (
        {"requestId": 5, "templateCode": None, "updateType": 1, "number": []},
        {"requestId", "templateCode", "updateType", "number"},
    ),
]


@pytest.mark.parametrize(("body", "fields"), INVALID_BODIES)
def test_invalid_input_names_each_field_and_sends_nothing(
    handler: ModuleType, service_env: ServiceEnv, body: Any, fields: set[str]
) -> None:
    answer = post(handler, body)

    assert answer.status == 400
    assert answer.body["error"]["code"] == "INVALID_REQUEST"
    assert {d["field"] for d in answer.body["error"]["details"]} == fields
    assert all(d["message"] for d in answer.body["error"]["details"])
    assert service_env.admin.stats()["requests"] == 0


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'{"requestId": "a", "requestId": "b"}', b"\xff\xfe", b'{"number": NaN}', b"", b"[" * 5000],
)
def test_unparsable_bodies_are_400(handler: ModuleType, service_env: ServiceEnv, raw: bytes) -> None:
    answer = post(handler, None, raw=raw)
    assert answer.status == 400
    assert answer.body["error"]["code"] == "INVALID_REQUEST"
    assert answer.body["error"]["details"]
    assert service_env.admin.stats()["requests"] == 0


def test_invalid_base64_is_400(handler: ModuleType, service_env: ServiceEnv) -> None:
    from ipass_local.api_gateway import proxy_event
    from ipass_local.lambda_context import LocalLambdaContext

    event = proxy_event("POST", "/budget-updates", {}, b"", LOCAL_CALLER_ARN)
    event["body"], event["isBase64Encoded"] = "%%%not-base64", True
    result = handler.lambda_handler(event, LocalLambdaContext())
    assert result["statusCode"] == 400
    assert json.loads(result["body"])["error"]["details"][0]["field"] == "body"


def test_bodies_over_16_kib_are_413_and_16_kib_is_parsed(handler: ModuleType, service_env: ServiceEnv) -> None:
    body = json.dumps(update(new_id(), 1)).encode()
    exactly = body[:-1] + b" " * (16 * 1024 - len(body)) + b"}"
    assert len(exactly) == 16 * 1024

    too_large = post(handler, None, raw=exactly + b" ")
    at_limit = post(handler, None, raw=exactly)

    assert too_large.status == 413
    assert too_large.body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert at_limit.status == 200


def test_get_unknown_request_is_404_and_bad_id_is_400(handler: ModuleType, service_env: ServiceEnv) -> None:
    missing = call_api(handler, "GET", "/budget-updates/never-seen")
    assert (missing.status, missing.body["error"]["code"]) == (404, "NOT_FOUND")
    bad = call_api(handler, "GET", "/budget-updates/" + "x" * 129)
    assert (bad.status, bad.body["error"]["details"][0]["field"]) == (400, "requestId")


def test_unknown_routes_and_methods(handler: ModuleType, service_env: ServiceEnv) -> None:
    assert call_api(handler, "GET", "/elsewhere").status == 404
    assert call_api(handler, "DELETE", "/budget-updates").status == 405


@pytest.mark.parametrize("endpoint_variable", ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SECRETS_MANAGER"])
def test_an_unreachable_dependency_is_503_and_sends_nothing(
    handler: ModuleType,
    service_env: ServiceEnv,
    monkeypatch: pytest.MonkeyPatch,
    unused_port: int,
    endpoint_variable: str,
) -> None:
    monkeypatch.setenv(endpoint_variable, f"http://127.0.0.1:{unused_port}")
    handler.budget_service.cache_clear()

    answer = post(handler, update(new_id(), 1))

    assert answer.status == 503
    assert answer.body["error"]["code"] == "DEPENDENCY_UNAVAILABLE"
    assert "Retry-After" in answer.headers
    assert service_env.admin.stats()["requests"] == 0


@pytest.mark.parametrize(
    "secret",
    [
        {"clientId": "C"},
        "not json",
        {"clientId": "C", "merchantAccountId": "M", "privateKey": "bm90IGEga2V5", "alipayPublicKey": "bm90"},
        {"algorithm": "ECC224"},
    ],
)
def test_a_bad_secret_is_500_misconfigured_and_sends_nothing(
    handler: ModuleType, service_env: ServiceEnv, secret: Any
) -> None:
    if isinstance(secret, dict) and "algorithm" in secret:
        secret = {**service_env.secret, **secret}
    service_env.put_secret(secret)

    answer = post(handler, update(new_id(), 1))

    assert answer.status == 500
    assert answer.body["error"]["code"] == "MISCONFIGURED"
    assert "PRIVATE KEY" not in json.dumps(answer.body)
    assert service_env.admin.stats()["requests"] == 0


def test_a_missing_secret_is_500(handler: ModuleType, service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNING_SECRET_ID", "no-such-secret")
    handler.budget_service.cache_clear()
    answer = post(handler, update(new_id(), 1))
    assert (answer.status, answer.body["error"]["code"]) == (500, "MISCONFIGURED")


def test_a_bad_setting_is_500_misconfigured_and_sends_nothing(
    handler: ModuleType, service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACE_AWS_CALLS", "yes")
    handler.budget_service.cache_clear()
    answer = post(handler, update(new_id(), 1))
    assert (answer.status, answer.body["error"]["code"]) == (500, "MISCONFIGURED")
    assert service_env.admin.stats()["requests"] == 0


def test_expired_final_record_is_sent_again_and_alipay_deduplicates(
    handler: ModuleType, service_env: ServiceEnv
) -> None:
    request_id = new_id()
    post(handler, update(request_id, 12))
    before = service_env.budget()
    service_env.dynamodb().update_item(
        TableName=service_env.table_name,
        Key={"requestId": {"S": request_id}},
        UpdateExpression="SET expiresAt = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )

    answer = post(handler, update(request_id, 12))

    assert (answer.status, answer.body["replayed"]) == (200, False)
    assert service_env.arrivals(request_id) == 2
    assert service_env.budget() == before  # AlipayHK answered its first answer and changed nothing


def test_final_records_carry_a_ttl_within_retention(handler: ModuleType, service_env: ServiceEnv) -> None:
    request_id = new_id()
    post(handler, update(request_id, 1))
    item = service_env.ledger_item(request_id)
    assert item is not None
    expires = float(item["expiresAt"]["N"])
    assert 7 * 86400 - 60 < expires - time.time() <= 7 * 86400
    assert "leaseToken" not in item


def test_unknown_records_never_expire(handler: ModuleType, service_env: ServiceEnv) -> None:
    request_id = new_id()
    service_env.admin.add_fault(request_id, "U_BEFORE_APPLY")
    post(handler, update(request_id, 1))
    item = service_env.ledger_item(request_id)
    assert item is not None
    assert item["state"]["S"] == "UNKNOWN"
    assert "expiresAt" not in item


@pytest.mark.parametrize("flag", ["false", "true", 1, 0])
def test_a_base64_flag_that_is_not_a_boolean_is_refused(
    handler: ModuleType, service_env: ServiceEnv, flag: object
) -> None:
    from ipass_local.api_gateway import proxy_event
    from ipass_local.lambda_context import LocalLambdaContext

    body = json.dumps(update(new_id(), 2)).encode()
    event = proxy_event("POST", "/budget-updates", {}, body, LOCAL_CALLER_ARN)
    event["isBase64Encoded"] = flag  # as a hand-written event might have it; API Gateway sends a boolean

    result = handler.lambda_handler(event, LocalLambdaContext())

    assert result["statusCode"] == 400
    assert json.loads(result["body"])["error"]["details"][0]["field"] == "isBase64Encoded"
    assert service_env.admin.stats()["requests"] == 0
