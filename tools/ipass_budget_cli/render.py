"""What the API's answers mean for the operator: exit codes, readable output and ``--json`` output.

Nothing rendered here can hold key material: answers and ledger records carry none, and local
errors are built from validation and transport messages only.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from ipass_budget_cli.api_client import ApiAnswer
from ipass_budget_cli.exit_codes import ExitCode

GATEWAY_RETRY_STATUSES = (429, 502, 503, 504)  # API Gateway throttling and integration errors
_REFUSED_CODES = ("INVALID_REQUEST", "PAYLOAD_TOO_LARGE", "REQUEST_ID_REUSED")
_RETRY_CODES = ("OUTCOME_UNKNOWN", "REQUEST_IN_PROGRESS", "DEPENDENCY_UNAVAILABLE")


@dataclass(frozen=True, slots=True)
class Verdict:
    exit_code: ExitCode
    headline: str
    next_step: str


def error_of(body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def classify_update(answer: ApiAnswer, request_id: str, rerun: str) -> Verdict:
    """The meaning of an answer to POST /budget-updates, row by row of the contract's table."""
    body = answer.body
    if not isinstance(body, dict):
        return _unexpected(answer, update_request_id=request_id, rerun=rerun)
    error = error_of(body)
    code = str(error.get("code") or "")
    outcome = body.get("outcome")
    info = _result_text(body)
    if answer.status == 200 and outcome == "SUCCEEDED":
        if body.get("replayed"):
            return Verdict(
                ExitCode.OK, "SUCCEEDED (replayed)", "nothing to do: an earlier call applied it; nothing was sent again"
            )
        return Verdict(ExitCode.OK, "SUCCEEDED", "nothing to do: AlipayHK applied the change")
    if outcome == "FAILED" and code == "UPSTREAM_REJECTED":
        return Verdict(
            ExitCode.REJECTED,
            f"REJECTED by AlipayHK before applying it{info}",
            "nothing was applied. Fix the cause (the key registered with AlipayHK, keyVersion, Client-Id: see "
            f"'ipass-budget secret put'), then retry with the same requestId:\n  {rerun}",
        )
    if outcome == "FAILED":
        return Verdict(
            ExitCode.FAILED,
            f"FAILED (final){info}",
            "AlipayHK did not apply the change and this requestId is spent. Check the template (code, status, "
            "budget range), then send a corrected update under a new requestId (omit --request-id).",
        )
    if outcome == "UNKNOWN" or code in _RETRY_CODES:
        return Verdict(ExitCode.RETRY_LATER, _retry_headline(code, info), _retry_next(answer, code, rerun))
    if code in _REFUSED_CODES:
        return Verdict(
            ExitCode.REFUSED, f"refused: {code}: {error.get('message', '')}", _refused_next(code, request_id)
        )
    if code == "MISCONFIGURED":
        return Verdict(
            ExitCode.MISCONFIGURED,
            f"MISCONFIGURED: {error.get('message', '')}",
            "nothing was sent. An operator must fix the signing secret ('ipass-budget secret put'); then retry with "
            f"the same requestId:\n  {rerun}",
        )
    if not code and answer.status in GATEWAY_RETRY_STATUSES:
        return Verdict(
            ExitCode.RETRY_LATER,
            f"API Gateway answered HTTP {answer.status} ({_message(body)})",
            "the update may or may not have reached the service. Retry later with the same requestId (it is "
            f"applied at most once):\n  {rerun}",
        )
    return _unexpected(answer, update_request_id=request_id, rerun=rerun)


def classify_status(answer: ApiAnswer, request_id: str) -> Verdict:
    """The meaning of an answer to GET /budget-updates/{requestId}."""
    body = answer.body
    if not isinstance(body, dict):
        return _unexpected(answer)
    error = error_of(body)
    code = str(error.get("code") or "")
    if answer.status == 200 and body.get("requestId") == request_id and "state" in body:
        return Verdict(ExitCode.OK, str(body["state"]), record_next_step(body))
    if answer.status == 404 and code == "NOT_FOUND" and body.get("requestId") == request_id:
        return Verdict(
            ExitCode.NOT_FOUND,
            "not found",
            "no request with this requestId is recorded (never sent, or its final outcome is past retention)",
        )
    if code == "INVALID_REQUEST":
        return Verdict(ExitCode.REFUSED, f"refused: {error.get('message', '')}", "check the requestId")
    if code == "DEPENDENCY_UNAVAILABLE" or (not code and answer.status in GATEWAY_RETRY_STATUSES):
        return Verdict(ExitCode.RETRY_LATER, f"unavailable (HTTP {answer.status})", "try again in a few seconds")
    if code == "MISCONFIGURED":
        return Verdict(
            ExitCode.MISCONFIGURED,
            f"MISCONFIGURED: {error.get('message', '')}",
            "an operator must fix the service's configuration",
        )
    return _unexpected(answer)


def record_next_step(record: dict[str, Any]) -> str:
    request_id = record.get("requestId", "")
    state = record.get("state")
    if state == "SUCCEEDED":
        return "final: AlipayHK applied it"
    if state == "FAILED":
        return "final: not applied; a new change needs a new requestId"
    if state == "NOT_APPLIED":
        return f"not applied; sending the same update again with --request-id {request_id} sends it"
    if state == "SENDING":
        return "an invocation is sending it right now (or died doing so): check again in a minute"
    if state == "UNKNOWN":
        return (
            f"outcome unknown. RESEND policy: send the same update again with --request-id {request_id}. "
            "HOLD policy: check AlipayHK / the merchant portal, then 'ipass-budget reconcile "
            f"{request_id} --applied|--not-applied' (README, Operating runbooks)"
        )
    return ""


def _result_text(body: dict[str, Any]) -> str:
    """``: CODE`` (AlipayHK's resultCode) for a headline; the whole resultInfo is in the rows below it."""
    info = body.get("resultInfo")
    code = info.get("resultCode") if isinstance(info, dict) else None
    return f": {code}" if code else ""


def _retry_headline(code: str, info: str) -> str:
    if code == "REQUEST_IN_PROGRESS":
        return "IN PROGRESS: another call with this requestId is still running"
    if code == "DEPENDENCY_UNAVAILABLE":
        return "UNAVAILABLE: Secrets Manager or DynamoDB could not be used; nothing was sent"
    return "UNKNOWN: the outcome is not known yet" + (f" (AlipayHK answered{info})" if info else "")


def _retry_next(answer: ApiAnswer, code: str, rerun: str) -> str:
    wait = f"in {answer.retry_after} s or later" if answer.retry_after else "later"
    text = f"run the same command again {wait}, with the same requestId:\n  {rerun}"
    if code in ("", "OUTCOME_UNKNOWN"):
        text += (
            "\nIt is applied at most once. Under the HOLD policy it stays UNKNOWN until an operator reconciles it "
            "(README, Operating runbooks)."
        )
    return text


def _refused_next(code: str, request_id: str) -> str:
    if code == "REQUEST_ID_REUSED":
        return (
            f"requestId {request_id} was already used with a different payload: see 'ipass-budget status "
            f"{request_id}'; for a new change omit --request-id"
        )
    return "nothing was sent: fix the input and run the command again"


def _message(body: dict[str, Any]) -> str:
    message = body.get("message") or body.get("Message") or ""
    return str(message)[:200] or "no message"


def _unexpected(answer: ApiAnswer, *, update_request_id: str | None = None, rerun: str = "") -> Verdict:
    body = answer.body
    detail = _message(body) if isinstance(body, dict) else (answer.snippet or "empty body")
    if answer.status in (401, 403):
        next_step = (
            "the API refused the call: check your AWS credentials and --region, that your IAM principal may call "
            "execute-api:Invoke on this API, and that --api includes the stage (e.g. .../prod)"
        )
    else:
        next_step = "check that --api is the ipass-budget API's base URL, including the stage (e.g. .../prod)"
    if update_request_id is not None:
        next_step += f"\nIf the update reached the service, retrying with the same requestId is safe:\n  {rerun}"
    return Verdict(ExitCode.UNREACHABLE, f"unexpected answer: HTTP {answer.status}: {detail}", next_step)


def local_error(code: str, message: str, request_id: str | None = None, details: list[Any] | None = None) -> Any:
    """An error body shaped like the API's, for refusals made before (or instead of) any call."""
    body: dict[str, Any] = {} if request_id is None else {"requestId": request_id}
    body["error"] = {"code": code, "message": message, "details": details or []}
    return body


def print_json(document: Any, stream: TextIO | None = None) -> None:
    print(json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False), file=stream or sys.stdout)


def envelope(http_status: int | None, exit_code: ExitCode, body: Any, origin: str = "api") -> dict[str, Any]:
    """The ``--json`` document: the answer body, its HTTP status, our exit code and who produced the body."""
    return {"httpStatus": http_status, "exitCode": int(exit_code), "origin": origin, "body": body}


def print_answer(answer: ApiAnswer, verdict: Verdict, stream: TextIO | None = None) -> None:
    """Readable form of an update answer."""
    out = stream or sys.stdout
    body = answer.body if isinstance(answer.body, dict) else {}
    print(verdict.headline, file=out)
    rows: list[tuple[str, Any]] = [("requestId", body.get("requestId")), ("outcome", body.get("outcome"))]
    info = body.get("resultInfo")
    if isinstance(info, dict):
        rows.append(("AlipayHK", " / ".join(str(info.get(k, "")) for k in ("resultStatus", "resultCode", "resultMsg"))))
    replayed = body.get("replayed")
    rows += [("tracerId", body.get("tracerId")), ("replayed", None if replayed is None else json.dumps(replayed))]
    error = error_of(body)
    if error:
        rows.append(("error", f"{error.get('code', '')}: {error.get('message', '')}"))
        rows += [
            ("  " + str(d.get("field", "")), d.get("message"))
            for d in error.get("details") or []
            if isinstance(d, dict)
        ]
    rows.append(("HTTP", answer.status))
    _rows(rows, out)
    print(f"next: {verdict.next_step}", file=out)


def print_record(record: dict[str, Any], stream: TextIO | None = None) -> None:
    """Readable form of a ledger record (GET /budget-updates/{requestId}, reconcile)."""
    out = stream or sys.stdout
    info = record.get("resultInfo")
    rows: list[tuple[str, Any]] = [
        ("requestId", record.get("requestId")),
        ("state", record.get("state")),
        ("outcome", record.get("outcome")),
        ("template", record.get("templateCode")),
        ("update", f"{record.get('updateType')} {record.get('number')}"),
        ("merchant", record.get("merchantAccountId")),
        (
            "AlipayHK",
            " / ".join(str(info.get(k, "")) for k in ("resultStatus", "resultCode", "resultMsg"))
            if isinstance(info, dict)
            else None,
        ),
        ("tracerId", record.get("tracerId")),
        ("attempts", record.get("attempts")),
        ("created", record.get("createdAt")),
        ("updated", record.get("updatedAt")),
        ("caller", record.get("caller")),
        ("source", record.get("source")),
    ]
    resolution = record.get("resolution")
    if isinstance(resolution, dict):
        rows.append(
            (
                "reconciled",
                f"applied={resolution.get('applied')} by {resolution.get('by')} at {resolution.get('at')}"
                + (f" note: {resolution.get('note')}" if resolution.get("note") else ""),
            )
        )
    _rows(rows, out)


def print_problem(message: str, next_step: str, stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    print(f"error: {message}", file=out)
    if next_step:
        print(f"next: {next_step}", file=out)


def _rows(rows: list[tuple[str, Any]], out: TextIO) -> None:
    for name, value in rows:
        if value is not None and value != "":
            print(f"  {name:<11}{value}", file=out)
