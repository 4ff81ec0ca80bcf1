"""``ipass-budget update``: one budget change through the API, at most once per requestId."""

from __future__ import annotations

import argparse
import shlex
import sys
import uuid
from typing import Any

from ipass_budget.errors import FieldError, InvalidRequestError
from ipass_budget.models import BudgetUpdateInput, UpdateType, parse_budget_update
from ipass_budget_cli.api_client import ApiClient, ApiTransportError, ApiUsageError, NoCredentialsForSigningError
from ipass_budget_cli.exit_codes import ExitCode
from ipass_budget_cli.render import (
    classify_update,
    envelope,
    local_error,
    print_answer,
    print_json,
    print_problem,
)


def new_request_id() -> str:
    return f"cli-{uuid.uuid4().hex}"


def build_request(args: argparse.Namespace) -> BudgetUpdateInput:
    """Validate locally exactly as the API would; raises InvalidRequestError naming each bad field."""
    append, subtract = args.append, args.subtract
    raw_number: str = append if append is not None else subtract
    payload: dict[str, Any] = {
        "requestId": args.request_id if args.request_id is not None else new_request_id(),
        "templateCode": args.template,
        "updateType": str(UpdateType.APPEND_BUDGET if append is not None else UpdateType.SUBTRACT_BUDGET),
        "number": _whole_number(raw_number),
    }
    if args.merchant_account_id is not None:
        payload["merchantAccountId"] = args.merchant_account_id
    return parse_budget_update(payload)


def _whole_number(text: str) -> object:
    # int() would also take "1_000", "+5" and " 5"; the CLI accepts what the JSON API accepts.
    if text.isascii() and text.isdigit():
        return int(text)
    raise InvalidRequestError([FieldError("number", f"must be a whole number, got {text[:20]!r}")])


def payload_of(request: BudgetUpdateInput) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "requestId": request.request_id,
        "templateCode": request.template_code,
        "updateType": str(request.update_type),
        "number": request.number,
    }
    if request.merchant_account_id is not None:
        payload["merchantAccountId"] = request.merchant_account_id
    return payload


def rerun_command(args: argparse.Namespace, request: BudgetUpdateInput) -> str:
    """The command that retries this exact update (same requestId and payload)."""
    words = ["ipass-budget", "update", "--api", args.api, "--template", request.template_code]
    words += ["--append" if request.update_type is UpdateType.APPEND_BUDGET else "--subtract", str(request.number)]
    if request.merchant_account_id is not None:
        words += ["--merchant-account-id", request.merchant_account_id]
    words += ["--request-id", request.request_id]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    try:
        request = build_request(args)
    except InvalidRequestError as exc:
        details = [e.as_dict() for e in exc.errors]
        return _refuse(args, "INVALID_REQUEST", f"the request is invalid: {exc}", details, args.request_id)
    try:
        client = ApiClient(args.api, sign=args.sign, region=args.region, timeout=args.timeout)
    except ApiUsageError as exc:
        return _refuse(args, "INVALID_API_URL", str(exc), [], request.request_id)
    except NoCredentialsForSigningError as exc:
        return _local_failure(args, ExitCode.UNREACHABLE, "NO_CREDENTIALS", str(exc), request.request_id, "")

    rerun = rerun_command(args, request)
    generated = args.request_id is None
    # Before calling: whatever happens next, the operator has the id to retry with.
    note = " (generated; reuse it with --request-id to retry)" if generated else ""
    print(f"requestId: {request.request_id}{note}", file=sys.stderr, flush=True)
    try:
        answer = client.post_update(payload_of(request))
    except ApiTransportError as exc:
        if exc.may_have_arrived:
            return _local_failure(
                args,
                ExitCode.RETRY_LATER,
                "NO_ANSWER",
                f"{exc}: the update may or may not have been applied",
                request.request_id,
                f"run the same command again; it is applied at most once:\n  {rerun}",
            )
        return _local_failure(
            args,
            ExitCode.UNREACHABLE,
            "UNREACHABLE",
            f"{exc}; nothing was sent",
            request.request_id,
            f"check --api and your network, then run:\n  {rerun}",
        )
    except KeyboardInterrupt:
        print_problem(
            "interrupted: the update may or may not have been applied",
            f"run the same command again; it is applied at most once:\n  {rerun}",
        )
        return ExitCode.INTERRUPTED
    verdict = classify_update(answer, request.request_id, rerun)
    if args.json:
        print_json(
            envelope(answer.status, verdict.exit_code, answer.body if answer.body is not None else answer.snippet)
        )
        if verdict.exit_code is not ExitCode.OK:
            print(f"next: {verdict.next_step}", file=sys.stderr)
    else:
        print_answer(answer, verdict)
    return verdict.exit_code


def _refuse(args: argparse.Namespace, code: str, message: str, details: list[Any], request_id: str | None) -> int:
    return _local_failure(args, ExitCode.REFUSED, code, message, request_id, "nothing was sent: fix the input", details)


def _local_failure(
    args: argparse.Namespace,
    exit_code: ExitCode,
    code: str,
    message: str,
    request_id: str | None,
    next_step: str,
    details: list[Any] | None = None,
) -> int:
    if args.json:
        print_json(envelope(None, exit_code, local_error(code, message, request_id, details), origin="cli"))
    print_problem(message, next_step)
    return exit_code
