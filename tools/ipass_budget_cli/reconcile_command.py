"""``ipass-budget reconcile``: an operator settles a request whose outcome is unknown (HOLD policy).

Reads the ledger item, refuses unless it is UNKNOWN or SENDING with an ended lease, and records
the decision with who (STS caller ARN, else ``local:<user>``), when and a note (``Ledger.resolve``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from ipass_budget.ledger import Ledger, LedgerRecord, LedgerState, is_conditional_failure
from ipass_budget.models import token_problem
from ipass_budget_cli import aws
from ipass_budget_cli.exit_codes import ExitCode
from ipass_budget_cli.render import print_json, print_problem, print_record

MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 1.0, 365.0
_TABLE_PROBLEMS = ("ResourceNotFoundException", "ValidationException")
_T = TypeVar("_T")


class ReconcileError(Exception):
    def __init__(self, exit_code: ExitCode, message: str, next_step: str, record: LedgerRecord | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.next_step = next_step
        self.record = record


def refusal(record: LedgerRecord, now: float) -> ReconcileError | None:
    """Why this item cannot be reconciled now, or None when it can."""
    state = record.state
    if state is LedgerState.UNKNOWN or (state is LedgerState.SENDING and not record.lease_live(now)):
        return None
    if state is LedgerState.SENDING:
        seconds = int((record.lease_expires_at or now) - now) + 1
        return ReconcileError(
            ExitCode.RETRY_LATER,
            f"{record.request_id} is SENDING: an invocation holds it for {seconds} s more",
            "check again after the lease ends ('ipass-budget status'); it may settle by itself",
            record,
        )
    if state is LedgerState.NOT_APPLIED:
        return ReconcileError(
            ExitCode.REFUSED,
            f"{record.request_id} is NOT_APPLIED: AlipayHK did not apply it, so there is nothing to reconcile",
            "to apply it, send the same update again with the same requestId",
            record,
        )
    resolved = " (already reconciled)" if record.resolution else ""
    return ReconcileError(
        ExitCode.REFUSED,
        f"{record.request_id} is {state} (final){resolved}: only UNKNOWN requests, or SENDING ones whose lease "
        "has ended, can be reconciled",
        "nothing to do",
        record,
    )


def reconcile(args: argparse.Namespace, table: str, now: float | None = None) -> LedgerRecord:
    session = aws.session(args.region)
    ledger = _guard(table, lambda: Ledger(aws.dynamodb(session), table))  # no region: an error here
    existing = _guard(table, lambda: ledger.get(args.request_id))
    if existing is None:
        raise ReconcileError(
            ExitCode.NOT_FOUND, f"no request {args.request_id} in table {table}", "check the requestId and --table"
        )
    if problem := refusal(existing, time.time() if now is None else now):
        raise problem
    by = aws.caller_identity(session)
    try:
        return ledger.resolve(
            existing, applied=args.applied, by=by, note=args.note, retention_seconds=args.retention_days * 86_400
        )
    except ClientError as exc:
        if not is_conditional_failure(exc):
            raise _aws_problem(table, exc) from None
    except BotoCoreError as exc:
        raise _aws_problem(table, exc) from None
    # Another writer (an invocation, another operator) got there between the read and the write.
    current = _guard(table, lambda: ledger.get(args.request_id))
    raise ReconcileError(
        ExitCode.RETRY_LATER,
        f"{args.request_id} changed while reconciling (now {current.state if current else 'gone'}); "
        "nothing was recorded",
        "check it with 'ipass-budget status' and run the command again if it is still unresolved",
        current,
    )


def _guard(table: str, call: Callable[[], _T]) -> _T:
    try:
        return call()
    except (BotoCoreError, ClientError) as exc:
        raise _aws_problem(table, exc) from None


def _aws_problem(table: str, exc: BotoCoreError | ClientError) -> ReconcileError:
    if isinstance(exc, ClientError) and aws.error_code(exc) in _TABLE_PROBLEMS:
        return ReconcileError(ExitCode.REFUSED, f"table {table}: {aws.describe(exc)}", "check --table and the region")
    return ReconcileError(
        ExitCode.UNREACHABLE, f"DynamoDB: {aws.describe(exc)}", "check your AWS credentials, region and permissions"
    )


def run(args: argparse.Namespace) -> int:
    table = args.table or os.environ.get("LEDGER_TABLE_NAME", "")
    if not table:
        print_problem("no ledger table", "pass --table NAME or set LEDGER_TABLE_NAME")
        return ExitCode.USAGE
    if problem := token_problem(args.request_id, 128):
        print_problem(f"requestId {problem}", "check the requestId")
        return ExitCode.REFUSED
    if not MIN_RETENTION_DAYS <= args.retention_days <= MAX_RETENTION_DAYS:
        print_problem(f"--retention-days must be {MIN_RETENTION_DAYS:g}-{MAX_RETENTION_DAYS:g}", "")
        return ExitCode.REFUSED
    try:
        record = reconcile(args, table)
    except ReconcileError as exc:
        if args.json:
            current = exc.record.public() if exc.record else None
            print_json({"exitCode": int(exc.exit_code), "error": str(exc), "record": current})
        print_problem(str(exc), exc.next_step)
        return exc.exit_code
    if args.json:
        print_json({"exitCode": int(ExitCode.OK), "record": record.public()})
    else:
        decision = "SUCCEEDED (applied)" if args.applied else "FAILED (not applied)"
        print(f"reconciled: {record.request_id} is now {decision}")
        print_record(record.public())
        print(
            "next: callers sending this requestId again get this outcome (replayed)"
            + ("" if args.applied else "; a change that is still wanted needs a new requestId")
        )
    return ExitCode.OK
