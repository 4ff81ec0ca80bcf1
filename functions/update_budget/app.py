"""Lambda entry point (contract section 1): the REST API and EventBridge Scheduler invocations.

Thin by design: it turns events into calls on ipass_budget (shipped in the layer) and renders the
answers. Clients, sessions and parsed keys live for the whole execution environment.
"""

from __future__ import annotations

import base64
import binascii
import time
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import botocore.session
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from ipass_budget.api import (
    HttpAnswer,
    answer_submission,
    error_answer,
    get_budget_update,
    invalid_answer,
    post_budget_update,
)
from ipass_budget.client import AlipayClient
from ipass_budget.deadline import attempt_seconds, bound_attempts
from ipass_budget.errors import ConfigurationError, FieldError, InvalidRequestError
from ipass_budget.ledger import Ledger, LedgerState
from ipass_budget.models import BudgetUpdateInput
from ipass_budget.outcome import Outcome
from ipass_budget.schedule import is_schedule_event, is_unresolved_check, parse_schedule_input
from ipass_budget.secret_source import SecretSource
from ipass_budget.service import BudgetService, Report
from ipass_budget.settings import Settings, UnknownOutcomePolicy, trace_aws_calls

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

logger = Logger()
# The domain logs through the standard logging module; give its loggers this logger's JSON
# handler and level, so its lines (key rotation, failed ledger writes) reach CloudWatch too.
copy_config_to_registered_loggers(source_logger=logger, include={"ipass_budget"})


def _traced_modules() -> tuple[str, ...]:
    """The AlipayHK call (requests) always; DynamoDB and Secrets Manager (botocore) on request.

    An X-Ray subsegment costs ~0.1 ms of CPU, and a replay, a single DynamoDB call, would pay for
    it every time (docs/performance.md). The table's CloudWatch metrics show the ledger's latency
    and throttling; TRACE_AWS_CALLS=true adds its calls to the traces for a closer look. Named
    modules only: patch_all() would also import and patch sqlite3 and every database driver it
    finds, at every cold start.
    """
    try:
        aws_calls = trace_aws_calls()
    except ConfigurationError:
        aws_calls = False  # Settings.from_env() answers every request with MISCONFIGURED
    return ("botocore", "requests") if aws_calls else ("requests",)


tracer = Tracer(patch_modules=_traced_modules())
metrics = Metrics()
# X-Ray copies the whole Python stack into every exception it records; with TRACE_AWS_CALLS every
# replay records one, the refused claim's ConditionalCheckFailedException. Type and message are
# kept; the stack cost about 0.3 ms per replay (docs/performance.md) and is in the logs whenever
# the handler fails.
tracer.provider.max_trace_back = 0  # type: ignore[attr-defined]

# DynamoDB and Secrets Manager answer in milliseconds: an attempt gets at most 1.5 s, and one retry
# (``total_max_attempts`` counts the first attempt; ``max_attempts`` would count retries only). On
# top, bound_attempts() starts no attempt that could end past the service's deadline for it.
# parameter_validation=False: the ledger's requests have fixed shapes and DynamoDB validates them
# anyway; botocore's client-side check costs ~0.15 ms of CPU per call (docs/performance.md).
_AWS_CONFIG = Config(
    connect_timeout=0.5,
    read_timeout=1.0,
    retries={"mode": "standard", "total_max_attempts": 2},
    parameter_validation=False,
)
_OUTCOME_METRICS = {
    Outcome.SUCCEEDED: "UpdatesSucceeded",
    Outcome.FAILED: "UpdatesFailed",
    Outcome.UNKNOWN: "UpdatesUnknown",
}
POST_ROUTE = "/budget-updates"
GET_ROUTE = "/budget-updates/{requestId}"


class ScheduledUpdateNotFinalError(RuntimeError):
    """Raised on the schedule path so Lambda retries the event and, finally, keeps it on failure."""


@cache
def budget_service() -> BudgetService:
    """Built once per execution environment; raises ConfigurationError on bad settings."""
    settings = Settings.from_env()
    # botocore's own session: boto3 adds nothing this function uses, and importing it and building
    # its Session cost ~10 ms of every cold start (docs/performance.md).
    session = botocore.session.get_session()
    dynamodb = cast("DynamoDBClient", session.create_client("dynamodb", config=_AWS_CONFIG))
    secretsmanager = cast("SecretsManagerClient", session.create_client("secretsmanager", config=_AWS_CONFIG))
    bound_attempts(dynamodb)
    bound_attempts(secretsmanager)
    return BudgetService(
        settings=settings,
        ledger=Ledger(dynamodb, settings.ledger_table_name),
        secrets=SecretSource(secretsmanager, settings.signing_secret_id, settings.secret_cache_seconds),
        client=AlipayClient(settings.ipass_base_url, settings.retry),
        aws_attempt_seconds=attempt_seconds(_AWS_CONFIG),
    )


# No @tracer.capture_lambda_handler: its "## lambda_handler" subsegment would repeat the Invocation
# subsegment Lambda itself records (and Initialization marks a cold start), for another ~0.1 ms of
# CPU per call (docs/performance.md). The AlipayHK subsegments hang off Lambda's function segment.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_schedule_event(event):
        return handle_schedule(event, context)
    if is_unresolved_check(event):
        return check_unresolved_requests()
    return proxy_result(handle_api(event, context))


def check_unresolved_requests() -> dict[str, Any]:
    """The UnresolvedRequestsCheck schedule: publish how many requests are UNKNOWN, every time.

    The metric is published even when it is 0, so the alarm on it stays raised exactly as long as
    requests wait for a retry (RESEND) or an operator's reconciliation (HOLD).
    """
    count, sample = budget_service().unresolved_requests()
    metrics.add_metric(name="UnresolvedRequests", unit=MetricUnit.Count, value=count)
    if count:
        logger.warning("requests with an UNKNOWN outcome wait", extra={"unresolved": count, "request_ids": sample})
    return {"unresolved": count, "requestIds": sample}


def handle_api(event: dict[str, Any], context: LambdaContext) -> HttpAnswer:
    # API Gateway sends these as documented; anything else is treated as absent, never raised on.
    raw_method = event.get("httpMethod")
    method = raw_method.upper() if isinstance(raw_method, str) and raw_method.isascii() else ""
    route = event.get("resource") or ""
    if route == POST_ROUTE and method == "POST":
        return _post(event, context)
    if route == GET_ROUTE and method == "GET":
        parameters = event.get("pathParameters")
        request_id = parameters.get("requestId") if isinstance(parameters, dict) else None
        return _get(request_id if isinstance(request_id, str) else "")
    if route in (POST_ROUTE, GET_ROUTE):
        return error_answer(405, "METHOD_NOT_ALLOWED", f"{method or 'this method'} is not allowed on {route}")
    return error_answer(404, "NOT_FOUND", "no such route")


def handle_schedule(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Return the answer body on a final outcome; raise otherwise, so Lambda retries the event."""
    try:
        request = parse_schedule_input(event)
    except InvalidRequestError as exc:
        logger.error("schedule input is invalid", extra={"details": [e.as_dict() for e in exc.errors]})
        raise ScheduledUpdateNotFinalError(f"invalid schedule input: {exc}") from None
    caller = f"schedule:{event['schedule']['arn']}"
    answer = answer_submission(request, lambda r: _submit(r, caller=caller, source="schedule", context=context))
    _count_refusal(answer)
    if answer.status >= 500 or answer.body.get("outcome") not in (Outcome.SUCCEEDED, Outcome.FAILED):
        code = answer.body.get("error", {}).get("code", "")
        raise ScheduledUpdateNotFinalError(f"schedule occurrence {request.request_id} is not final: {code}")
    return answer.body


def proxy_result(answer: HttpAnswer) -> dict[str, Any]:
    return {
        "statusCode": answer.status,
        "headers": {"Content-Type": "application/json", **answer.headers},
        "body": answer.encoded().decode("utf-8"),
        "isBase64Encoded": False,
    }


def _post(event: dict[str, Any], context: LambdaContext) -> HttpAnswer:
    try:
        raw = _body_bytes(event)
    except InvalidRequestError as exc:
        return invalid_answer(exc)
    caller = _caller(event)
    answer = post_budget_update(raw, lambda r: _submit(r, caller=caller, source="api", context=context))
    _count_refusal(answer)
    return answer


def _get(request_id: str) -> HttpAnswer:
    # The requestId is validated before the service is built: a bad one is 400 even when misconfigured.
    return get_budget_update(request_id, lambda valid_id: budget_service().status(valid_id))


def _submit(request: BudgetUpdateInput, *, caller: str, source: str, context: LambdaContext) -> Report:
    logger.set_correlation_id(request.request_id)
    service = budget_service()
    remaining = context.get_remaining_time_in_millis() / 1000
    # The service keeps its own reserve (the final ledger write, the answer) from this deadline.
    deadline = time.monotonic() + remaining
    report = service.submit(request, caller=caller, source=source, deadline=deadline, lease_seconds=remaining)
    _observe(report, service.settings.unknown_outcome_policy)
    return report


# Refusals without an AlipayHK outcome, by error code: what each is counted as.
_REFUSAL_METRICS = {
    "REQUEST_IN_PROGRESS": "LedgerConflicts",
    "REQUEST_ID_REUSED": "LedgerConflicts",
    "INVALID_REQUEST": "InvalidRequests",
    "PAYLOAD_TOO_LARGE": "InvalidRequests",
    "DEPENDENCY_UNAVAILABLE": "DependencyUnavailable",
    "MISCONFIGURED": "Misconfigured",
}


def _count_refusal(answer: HttpAnswer) -> None:
    if "outcome" in answer.body:
        return
    metric = _REFUSAL_METRICS.get(answer.body.get("error", {}).get("code", ""))
    if metric:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)


def _observe(report: Report, policy: UnknownOutcomePolicy) -> None:
    if report.replayed:
        metrics.add_metric(name="Replays", unit=MetricUnit.Count, value=1)
    if report.rejected:
        metrics.add_metric(name="UpdatesRejected", unit=MetricUnit.Count, value=1)
    elif not report.replayed or report.outcome is Outcome.UNKNOWN:
        # An unresolved request keeps counting, so the UNKNOWN alarm stays up until it is resolved.
        metrics.add_metric(name=_OUTCOME_METRICS[report.outcome], unit=MetricUnit.Count, value=1)
    if report.alipay_seconds is not None:
        metrics.add_metric(name="AlipayLatency", unit=MetricUnit.Milliseconds, value=report.alipay_seconds * 1000)
    if not report.recorded:
        metrics.add_metric(name="LedgerWriteFailed", unit=MetricUnit.Count, value=1)
    if policy is UnknownOutcomePolicy.HOLD and report.state is LedgerState.UNKNOWN:
        # Never re-sent automatically: counted on every call until an operator reconciles it.
        metrics.add_metric(name="UpdatesHeld", unit=MetricUnit.Count, value=1)
    logger.info(
        "budget update",
        extra={
            "outcome": str(report.outcome),
            "state": str(report.state),
            "result_code": report.result_info.result_code if report.result_info else None,
            "tracer_id": report.tracer_id,
            "attempts": report.attempts,
            "replayed": report.replayed,
        },
    )


def _body_bytes(event: dict[str, Any]) -> bytes:
    flag = event.get("isBase64Encoded")
    if flag is not None and not isinstance(flag, bool):  # API Gateway sends a JSON boolean: no guessing
        raise InvalidRequestError([FieldError("isBase64Encoded", "must be a boolean")])
    body = event.get("body")
    if not isinstance(body, str):
        return b""
    if flag is not True:
        return body.encode("utf-8", errors="surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError([FieldError("body", "is flagged base64 but is not valid base64")]) from None


def _caller(event: dict[str, Any]) -> str:
    context = event.get("requestContext")
    identity = context.get("identity") if isinstance(context, dict) else None
    if not isinstance(identity, dict):
        return "unknown"
    return str(identity.get("userArn") or identity.get("caller") or "unknown")
