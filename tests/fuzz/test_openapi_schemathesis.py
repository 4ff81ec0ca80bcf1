"""schemathesis against the committed OpenAPI document (docs/openapi.json), over HTTP.

``LocalApiGateway`` serves the real handler, with moto server and the sandbox behind it. Checks:
no server error, documented status codes, documented content type, response headers and response
bodies that match the document's schemas. Valid requests reach the sandbox (arbitrary template
codes: 404 PASS_TEMPLATE_HAS_NOT_EXIT, documented). On top of schemathesis's own checks, the
contract oracle of ``tests.fuzz.support`` decides from the bytes actually sent whether a request
was valid: an invalid one must be refused with 400/413 and never reach AlipayHK.

A second test walks every documented answer the local stack can produce (each row of the
contract's status table, and a ledger record in every state) through the same schema checks,
because random requests alone only ever find unknown templates and missing records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ipass_budget.keys import public_key_pem
from ipass_budget.ledger import Ledger
from ipass_budget.models import BudgetUpdate, UpdateType
from ipass_local.api_gateway import LocalApiGateway
from ipass_local.openapi import OPENAPI_PATH
from ipass_sandbox.config import DEMO_CLIENT_ID, DEMO_MERCHANT_ACCOUNT_ID
from tests.fuzz.support import (
    FUZZ_PROFILE,
    LONG_FACTOR,
    POST_ROUTE,
    Answer,
    Expectation,
    Tally,
    expect_for_raw,
    is_token,
    problems_with,
)
from tests.reliability_log import record
from tests.service.support import ServiceEnv, new_id, update

StCase = schemathesis.Case[Any]
SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH)
POST_OPERATION = SCHEMA["/budget-updates"]["POST"]
GET_OPERATION = SCHEMA["/budget-updates/{requestId}"]["GET"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
CATEGORY = "fuzz: OpenAPI document (schemathesis)"
RETRY_LATER = {"REQUEST_IN_PROGRESS", "OUTCOME_UNKNOWN", "DEPENDENCY_UNAVAILABLE"}
EXAMPLES = 100 * (LONG_FACTOR if FUZZ_PROFILE == "long" else 1)


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    """Counts one operation's generated cases; recorded at teardown, so a failing run is recorded too."""
    counts = Tally()
    yield counts
    label = request.node.name.partition("[")[2].rstrip("]") or request.node.name
    if counts.broken:
        outcome = f"{counts.broken} of {counts.cases} failed: {counts.first_problem}"
    else:
        statuses = ", ".join(f"{status}x{count}" for status, count in sorted(counts.statuses.items()))
        outcome = f"no server error, status/content type/headers/body as documented; statuses {statuses}"
    record(
        CATEGORY,
        f"generated cases for {label}",
        outcome[:400],
        cases=counts.cases,
        sent_when_it_should_not=counts.sent_invalid,
    )


def _summary(exc: Exception) -> str:
    """One line naming each schemathesis finding (ST101 Server error, undocumented status, ...)."""
    found = getattr(exc, "exceptions", None) or [exc]
    return "; ".join(str(getattr(item, "title", "") or type(item).__name__) for item in found)


def _answer(response: Any, sent: int) -> Answer:
    content_type = response.headers.get("content-type") or [""]
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    return Answer(response.status_code, {"Content-Type": content_type[0]}, body, sent)


def _oracle(method: str, path: str, raw: bytes) -> Expectation | None:
    """The contract's expectation for a POST to the route, from the bytes actually sent; None otherwise."""
    if method == "POST" and path == POST_ROUTE:
        return expect_for_raw(raw)
    return None


def _get_problems(method: str, path: str, answer: Answer) -> list[str]:
    """GET never sends; a requestId outside the contract's token rule is 400, an unknown one 404."""
    problems = [f"{answer.sent} request(s) reached AlipayHK on {method} {path}"] if answer.sent else []
    prefix = "/budget-updates/"
    segment = path[len(prefix) :] if path.startswith(prefix) else ""
    if method == "GET" and segment and "/" not in segment:
        expected = 404 if is_token(unquote(segment), 128) else 400
        if answer.status != expected:
            problems.append(f"GET {path} answered {answer.status}, expected {expected}")
    return problems


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_generated_requests_conform_to_the_document(
    case: StCase, gateway: LocalApiGateway, service_env: ServiceEnv, tally: Tally
) -> None:
    before = service_env.admin.stats()["requests"]
    response = case.call(base_url=gateway.url, timeout=30)
    answer = _answer(response, service_env.admin.stats()["requests"] - before)
    prepared = response.request
    raw = prepared.body if isinstance(prepared.body, bytes) else (prepared.body or "").encode()
    path = (prepared.path_url or "").split("?", 1)[0]
    method = prepared.method or ""
    expected = _oracle(method, path, raw)

    tally.cases += 1
    tally.statuses[answer.status] = tally.statuses.get(answer.status, 0) + 1
    if expected is not None and expected.kind != "valid":
        tally.sent_invalid += 1 if answer.sent else 0
    problems = problems_with(answer, expected) if expected is not None else _get_problems(method, path, answer)
    try:
        case.validate_response(response, checks=CHECKS)
    except Exception as exc:  # schemathesis raises a FailureGroup (an ExceptionGroup) of its findings
        problems.append(_summary(exc))
        tally.broken += 1
        tally.first_problem = tally.first_problem or problems[-1]
        raise
    if problems:
        tally.broken += 1
        tally.first_problem = tally.first_problem or problems[0]
    assert not problems, f"{problems} for {method} {path} {raw[:300]!r}"


# ------------------------------------------------------------------ every documented answer, checked
@dataclass
class Stack:
    """What a scenario may arrange: the deployment, the handler module, env changes, the API URL."""

    env: ServiceEnv
    handler: ModuleType
    monkeypatch: pytest.MonkeyPatch
    url: str
    closed_port: int
    spare_key: Any

    def prior(self, body: dict[str, Any]) -> str:
        """POST ``body`` once (set-up, not checked) and return its requestId."""
        requests.post(self.url + POST_ROUTE, json=body, timeout=30)
        return str(body["requestId"])

    def with_fault(self, fault: str) -> str:
        request_id = new_id()
        self.env.admin.add_fault(request_id, fault)
        return self.prior(update(request_id, 1))

    def claimed_elsewhere(self) -> str:
        request_id = new_id()
        ledger = Ledger(self.env.dynamodb(), self.env.table_name)
        claimed = BudgetUpdate(request_id, DEMO_MERCHANT_ACCOUNT_ID, "DEMO-VALID", UpdateType.APPEND_BUDGET, 5)
        assert ledger.claim(claimed, "arn:aws:iam::000000000000:user/other", "api", lease_seconds=60).token
        return request_id

    def resolved(self) -> str:
        request_id = self.with_fault("U_AFTER_APPLY")
        ledger = Ledger(self.env.dynamodb(), self.env.table_name)
        existing = ledger.get(request_id)
        assert existing is not None
        ledger.resolve(existing, applied=True, by="operator@example.com", note="seen applied", retention_seconds=3600)
        return request_id

    def rejected(self) -> str:
        """AlipayHK holds another public key for the client: the request is refused, NOT_APPLIED."""
        self.env.admin.register_key(DEMO_CLIENT_ID, "1", public_key_pem(self.spare_key))
        return self.prior(update(new_id(), 1))

    def timing_out(self) -> str:
        self.monkeypatch.setenv("IPASS_READ_TIMEOUT_SECONDS", "0.3")
        self.monkeypatch.setenv("IPASS_MAX_ATTEMPTS", "1")
        self.handler.budget_service.cache_clear()
        request_id = new_id()
        self.env.admin.add_fault(request_id, "DELAY_AFTER_APPLY", attempt=1, delay_seconds=3)
        return request_id

    def dynamodb_down(self) -> None:
        self.monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{self.closed_port}")
        self.handler.budget_service.cache_clear()

    def without_table_setting(self) -> None:
        self.monkeypatch.delenv("LEDGER_TABLE_NAME")
        self.handler.budget_service.cache_clear()

    def secret(self, **changes: str) -> None:
        self.env.put_secret({**self.env.secret, **changes})


def _post(body: Any) -> StCase:
    return POST_OPERATION.Case(body=body, media_type="application/json")


def _get(request_id: str) -> StCase:
    return GET_OPERATION.Case(path_parameters={"requestId": request_id})


def _post_misconfigured(stack: Stack) -> StCase:
    stack.secret(privateKey="bm90IGEga2V5")
    return _post(update(new_id()))


def _post_key_not_found(stack: Stack) -> StCase:
    stack.secret(keyVersion="7")
    return _post(update(new_id()))


def _post_dynamodb_down(stack: Stack) -> StCase:
    stack.dynamodb_down()
    return _post(update(new_id()))


def _get_dynamodb_down(stack: Stack) -> StCase:
    stack.dynamodb_down()
    return _get("some-id")


def _get_misconfigured(stack: Stack) -> StCase:
    stack.without_table_setting()
    return _get("some-id")


# Every row of the contract's status table the local stack can produce, and a record in every state.
SCENARIOS: list[tuple[str, int, Callable[[Stack], StCase]]] = [
    ("POST SUCCEEDED", 200, lambda s: _post(update(new_id(), 1))),
    ("POST replayed", 200, lambda s: _post(update(s.prior(update(new_id(), 1)), 1))),
    ("POST INVALID_REQUEST", 400, lambda s: _post({"requestId": "a b", "number": "1"})),
    ("POST PARAM_ILLEGAL", 400, lambda s: _post(update(new_id(), 11, template="DEMO-FULL"))),
    ("POST PASS_TEMPLATE_HAS_NOT_EXIT", 404, lambda s: _post(update(new_id(), 1, template="NOPE"))),
    ("POST PASS_TEMPLATE_STATUS_ILLEGAL", 409, lambda s: _post(update(new_id(), 1, template="DEMO-CLOSED"))),
    ("POST REQUEST_IN_PROGRESS", 409, lambda s: _post(update(s.claimed_elsewhere(), 5))),
    ("POST PAYLOAD_TOO_LARGE", 413, lambda s: _post({**update(new_id()), "pad": "x" * 17_000})),
    ("POST REQUEST_ID_REUSED", 422, lambda s: _post(update(s.prior(update(new_id(), 1)), 2))),
    ("POST MISCONFIGURED", 500, _post_misconfigured),
    ("POST UPSTREAM_REJECTED (INVALID_SIGNATURE)", 502, lambda s: _post(update(s.rejected(), 1))),
    ("POST UPSTREAM_REJECTED (KEY_NOT_FOUND)", 502, _post_key_not_found),
    ("POST OUTCOME_UNKNOWN (U)", 503, lambda s: _post(update(s.with_fault("U_AFTER_APPLY"), 1))),
    ("POST OUTCOME_UNKNOWN (TRAFFIC_LIMIT)", 503, lambda s: _post(update(s.with_fault("TRAFFIC_LIMIT"), 1))),
    ("POST DEPENDENCY_UNAVAILABLE", 503, _post_dynamodb_down),
    ("POST OUTCOME_UNKNOWN (timeout)", 504, lambda s: _post(update(s.timing_out(), 8))),
    ("GET SUCCEEDED record", 200, lambda s: _get(s.prior(update(new_id(), 1)))),
    ("GET FAILED record", 200, lambda s: _get(s.prior(update(new_id(), 1, template="NOPE")))),
    ("GET UNKNOWN record with resultInfo", 200, lambda s: _get(s.with_fault("U_AFTER_APPLY"))),
    ("GET UNKNOWN record without an answer", 200, lambda s: _get(s.with_fault("DROP_AFTER_APPLY"))),
    ("GET NOT_APPLIED record", 200, lambda s: _get(s.rejected())),
    ("GET resolved record", 200, lambda s: _get(s.resolved())),
    ("GET SENDING record", 200, lambda s: _get(s.claimed_elsewhere())),
    ("GET INVALID_REQUEST", 400, lambda s: _get("x" * 129)),
    ("GET NOT_FOUND", 404, lambda s: _get("never-seen")),
    ("GET MISCONFIGURED", 500, _get_misconfigured),
    ("GET DEPENDENCY_UNAVAILABLE", 503, _get_dynamodb_down),
]


@pytest.mark.parametrize(("name", "status", "arrange"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_every_documented_answer_conforms_to_the_document(
    name: str,
    status: int,
    arrange: Callable[[Stack], StCase],
    gateway: LocalApiGateway,
    service_env: ServiceEnv,
    handler: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    unused_port: int,
    spare_private_key: Any,
) -> None:
    stack = Stack(service_env, handler, monkeypatch, gateway.url, unused_port, spare_private_key)
    case = arrange(stack)
    response = case.call(base_url=gateway.url, timeout=30)
    # A documented 5xx (valid request, unusable dependency or unknown outcome) is the right answer here.
    checks = CHECKS if status < 500 else [check for check in CHECKS if check is not not_a_server_error]
    failure = ""
    try:
        case.validate_response(response, checks=checks)
    except Exception as exc:  # schemathesis raises a FailureGroup (an ExceptionGroup) of its findings
        failure = _summary(exc)
    body = json.loads(response.content)
    observed = f"{response.status_code} {body.get('error', {}).get('code') or body.get('state', '')}"
    record(CATEGORY, f"documented answer: {name}", f"{observed}; {failure or 'conforms to the document'}"[:400])
    assert response.status_code == status, response.content[:300]
    assert not failure, failure
    assert response.headers["content-type"] == ["application/json"]
    if status >= 400:
        assert body["error"]["code"]
        assert isinstance(body["error"]["details"], list)
    if status >= 400 and body["error"]["code"] in RETRY_LATER:
        assert int(response.headers["retry-after"][0]) > 0
