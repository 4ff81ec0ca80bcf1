"""The internal HTTP API (contract section 4), independent of API Gateway's event format.

``post_budget_update`` and ``get_budget_update`` take plain values (bytes, strings) and return an
``HttpAnswer``; the Lambda handler and the OpenAPI generator share the tables below.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ipass_budget.errors import (
    ConfigurationError,
    DependencyUnavailableError,
    FieldError,
    InvalidRequestError,
    RequestIdReusedError,
    RequestInProgressError,
)
from ipass_budget.models import BudgetUpdateInput, canonical_json, parse_budget_update, token_problem
from ipass_budget.outcome import Outcome
from ipass_budget.service import Report

MAX_BODY_BYTES = 16 * 1024
UNKNOWN_RETRY_AFTER_SECONDS = 5
DEPENDENCY_RETRY_AFTER_SECONDS = 2

# HTTP status of a FAILED outcome by AlipayHK resultCode (contract section 4). "PASS_..." are result codes.
FAILED_STATUS_BY_CODE = {  # nosec B105  # result codes, not passwords
    "PARAM_ILLEGAL": 400,
    "PASS_TEMPLATE_HAS_NOT_EXIT": 404,
    "PASS_TEMPLATE_STATUS_ILLEGAL": 409,
}
OTHER_FAILED_STATUS = 422
REJECTED_STATUS = 502

Submit = Callable[[BudgetUpdateInput], Report]


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return canonical_json(self.body)


def error_answer(
    status: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, str]] | None = None,
    request_id: str | None = None,
    retry_after: int | None = None,
) -> HttpAnswer:
    body: dict[str, Any] = {}
    if request_id is not None:
        body["requestId"] = request_id
    body["error"] = {"code": code, "message": message, "details": details or []}
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return HttpAnswer(status, body, headers)


def report_answer(report: Report) -> HttpAnswer:
    """Render what the service established, row by row of the contract's status table."""
    body: dict[str, Any] = {"requestId": report.request_id, "outcome": str(report.outcome)}
    if report.result_info is not None:
        body["resultInfo"] = report.result_info.as_dict()
    if report.tracer_id:
        body["tracerId"] = report.tracer_id
    body["replayed"] = report.replayed
    headers: dict[str, str] = {}
    if report.outcome is Outcome.SUCCEEDED:
        return HttpAnswer(200, body)
    if report.outcome is Outcome.FAILED and report.rejected:
        status, code = REJECTED_STATUS, "UPSTREAM_REJECTED"
        message = "AlipayHK refused the request before applying it; fix the cause and retry with the same requestId"
    elif report.outcome is Outcome.FAILED and report.reconciled_by:
        status, code = OTHER_FAILED_STATUS, "UPSTREAM_FAILED"
        message = f"an operator recorded that AlipayHK did not apply the change ({report.reconciled_by})"
    elif report.outcome is Outcome.FAILED:
        result_code = report.result_info.result_code if report.result_info else ""
        status, code = FAILED_STATUS_BY_CODE.get(result_code, OTHER_FAILED_STATUS), "UPSTREAM_FAILED"
        message = f"AlipayHK did not apply the change: {result_code or 'failed'}"
    else:
        status, code = (504 if report.timed_out else 503), "OUTCOME_UNKNOWN"
        message = "the outcome is not known yet; call again with the same requestId and payload"
        headers["Retry-After"] = str(UNKNOWN_RETRY_AFTER_SECONDS)
    body["error"] = {"code": code, "message": message, "details": []}
    return HttpAnswer(status, body, headers)


def decode_json_object(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity; errors name the body."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError([FieldError("body", "must be UTF-8 encoded JSON")]) from None

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if not _is_unicode(key):
                # An unpaired "\ud800"-style escape has no UTF-8 form: the answer could not even name it.
                raise InvalidRequestError([FieldError("body", "has a member name with an unpaired surrogate escape")])
            if key in result:
                raise InvalidRequestError([FieldError(key, "appears more than once")])
            result[key] = value
        return result

    def no_constants(name: str) -> Any:
        raise InvalidRequestError([FieldError("body", f"{name} is not valid JSON")])

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except ValueError as exc:
        if isinstance(exc, InvalidRequestError):
            raise
        raise InvalidRequestError([FieldError("body", "is not valid JSON")]) from None
    except RecursionError:
        raise InvalidRequestError([FieldError("body", "is nested too deeply")]) from None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def post_budget_update(raw_body: bytes, submit: Submit) -> HttpAnswer:
    """POST /budget-updates: size limit before parsing, strict JSON, validation, then ``submit``."""
    if len(raw_body) > MAX_BODY_BYTES:
        return error_answer(413, "PAYLOAD_TOO_LARGE", f"request body is over {MAX_BODY_BYTES} bytes")
    request_id: str | None = None
    try:
        data = decode_json_object(raw_body)
        if isinstance(data, dict) and token_problem(data.get("requestId"), 128) is None:
            request_id = data["requestId"]
        request = parse_budget_update(data)
    except InvalidRequestError as exc:
        return invalid_answer(exc, request_id)
    return answer_submission(request, submit)


def answer_submission(request: BudgetUpdateInput, submit: Submit) -> HttpAnswer:
    """Run a validated request through ``submit`` and render every outcome and refusal."""
    request_id = request.request_id
    try:
        return report_answer(submit(request))
    except RequestInProgressError as exc:
        return error_answer(
            409,
            "REQUEST_IN_PROGRESS",
            "a call with this requestId is still in progress; retry later with the same payload",
            request_id=request_id,
            retry_after=exc.retry_after,
        )
    except RequestIdReusedError:
        return error_answer(
            422, "REQUEST_ID_REUSED", "this requestId was already used with a different payload", request_id=request_id
        )
    except DependencyUnavailableError as exc:
        return dependency_answer(exc, request_id)
    except ConfigurationError as exc:
        return misconfigured_answer(exc, request_id)


def invalid_answer(exc: InvalidRequestError, request_id: str | None = None) -> HttpAnswer:
    details = [e.as_dict() for e in exc.errors]
    return error_answer(400, "INVALID_REQUEST", "the request is invalid", details=details, request_id=request_id)


def get_budget_update(request_id: str, status: Callable[[str], Any]) -> HttpAnswer:
    """GET /budget-updates/{requestId}: the ledger record, or 404."""
    if problem := token_problem(request_id, 128):
        return invalid_answer(InvalidRequestError([FieldError("requestId", problem)]))
    try:
        record = status(request_id)
    except DependencyUnavailableError as exc:
        return dependency_answer(exc, request_id)
    except ConfigurationError as exc:
        return misconfigured_answer(exc, request_id)
    if record is None:
        return error_answer(404, "NOT_FOUND", "no request with this requestId is recorded", request_id=request_id)
    return HttpAnswer(200, record.public())


def dependency_answer(exc: DependencyUnavailableError, request_id: str | None) -> HttpAnswer:
    return error_answer(
        503,
        "DEPENDENCY_UNAVAILABLE",
        f"{exc.dependency} is unavailable; nothing was sent to AlipayHK. Retry with the same requestId",
        request_id=request_id,
        retry_after=DEPENDENCY_RETRY_AFTER_SECONDS,
    )


def misconfigured_answer(exc: ConfigurationError, request_id: str | None) -> HttpAnswer:
    # ConfigurationError messages name settings and problems, never key material.
    return error_answer(500, "MISCONFIGURED", f"the service is misconfigured: {exc}", request_id=request_id)
