"""``ipass-budget status``: the ledger record of one requestId, through the API."""

from __future__ import annotations

import argparse
import sys

from ipass_budget.models import token_problem
from ipass_budget_cli.api_client import ApiClient, ApiTransportError, ApiUsageError, NoCredentialsForSigningError
from ipass_budget_cli.exit_codes import ExitCode
from ipass_budget_cli.render import (
    classify_status,
    envelope,
    local_error,
    print_json,
    print_problem,
    print_record,
)


def run(args: argparse.Namespace) -> int:
    request_id: str = args.request_id
    if problem := token_problem(request_id, 128):
        return _fail(args, ExitCode.REFUSED, "INVALID_REQUEST", f"requestId {problem}", "check the requestId")
    try:
        client = ApiClient(args.api, sign=args.sign, region=args.region, timeout=args.timeout)
    except ApiUsageError as exc:
        return _fail(args, ExitCode.REFUSED, "INVALID_API_URL", str(exc), "fix --api")
    except NoCredentialsForSigningError as exc:
        return _fail(args, ExitCode.UNREACHABLE, "NO_CREDENTIALS", str(exc), "")
    try:
        answer = client.get_update(request_id)
    except ApiTransportError as exc:
        return _fail(args, ExitCode.UNREACHABLE, "UNREACHABLE", str(exc), "check --api and your network")
    verdict = classify_status(answer, request_id)
    if args.json:
        print_json(
            envelope(answer.status, verdict.exit_code, answer.body if answer.body is not None else answer.snippet)
        )
    elif verdict.exit_code is ExitCode.OK:
        print_record(answer.body)
        if verdict.next_step:
            print(f"next: {verdict.next_step}")
    if verdict.exit_code is not ExitCode.OK:
        print_problem(verdict.headline, verdict.next_step)
    return verdict.exit_code


def _fail(args: argparse.Namespace, exit_code: ExitCode, code: str, message: str, next_step: str) -> int:
    if args.json:
        print_json(envelope(None, exit_code, local_error(code, message, args.request_id), origin="cli"))
    print_problem(message, next_step, sys.stderr)
    return exit_code
