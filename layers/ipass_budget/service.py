"""The budget-update use case: claim the requestId, send once, record the outcome.

Framework-free: the Lambda handler, the local stack and the tests drive it the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from ipass_budget.aws_errors import dependency_error
from ipass_budget.client import AlipayClient, SendResult
from ipass_budget.credentials import Credentials
from ipass_budget.deadline import aws_calls_until
from ipass_budget.errors import (
    ConfigurationError,
    DependencyUnavailableError,
    RequestIdReusedError,
    RequestInProgressError,
)
from ipass_budget.ledger import Claim, Ledger, LedgerRecord, LedgerState
from ipass_budget.models import BudgetUpdate, BudgetUpdateInput
from ipass_budget.outcome import Disposition, Outcome, Reason, ResultInfo
from ipass_budget.secret_source import SecretSource
from ipass_budget.settings import Settings, UnknownOutcomePolicy

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# AlipayHK refusals that a rotated key explains: re-read the secret once and send again.
_KEY_REFUSALS = frozenset({"INVALID_SIGNATURE", "KEY_NOT_FOUND", "SIGNATURE_INVALID"})
# Lease kept beyond the invocation's own deadline before another invocation may take the item over.
LEASE_MARGIN_SECONDS = 5.0
# Kept back after the last ledger write to render and return the answer.
ANSWER_MARGIN_SECONDS = 0.25
_TABLE_CONFIGURATION_CODES = frozenset({"ResourceNotFoundException", "AccessDeniedException"})


@dataclass(frozen=True, slots=True)
class Report:
    """What the service established for one call; the API and the schedule path render it."""

    request_id: str
    state: LedgerState
    outcome: Outcome
    rejected: bool = False  # AlipayHK refused before its budget logic ran: retry the same requestId
    result_info: ResultInfo | None = None
    tracer_id: str | None = None
    replayed: bool = False
    timed_out: bool = False
    attempts: int = 0
    alipay_seconds: float | None = None
    recorded: bool = True
    reconciled_by: str | None = None  # an operator settled the outcome (ipass-budget reconcile)

    @classmethod
    def from_record(cls, record: LedgerRecord) -> Report:
        resolution = record.resolution or {}
        return cls(
            request_id=record.request_id,
            state=record.state,
            outcome=record.outcome,
            rejected=record.state is LedgerState.NOT_APPLIED and record.result_info is not None,
            # After a reconciliation the stored answer (a U, typically) is not what settled it.
            result_info=None if resolution else record.result_info,
            tracer_id=record.tracer_id,
            replayed=True,
            timed_out=record.reason == Reason.TIMEOUT,
            reconciled_by=f"{resolution.get('by', '?')} at {resolution.get('at', '?')}" if resolution else None,
        )


class BudgetService:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        secrets: SecretSource,
        client: AlipayClient,
        clock: Callable[[], float] = time.time,
        *,
        aws_attempt_seconds: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.secrets = secrets
        self.client = client
        self._clock = clock
        # The longest one Secrets Manager or DynamoDB attempt can take (its connect + read timeouts).
        self._aws_attempt_seconds = aws_attempt_seconds
        self._monotonic = monotonic

    @property
    def reserve_seconds(self) -> float:
        """Time kept back from the deadline for AlipayHK: always one whole ledger write and the answer."""
        return max(self.settings.response_reserve_seconds, self._aws_attempt_seconds + ANSWER_MARGIN_SECONDS)

    def unresolved_requests(self, sample: int = 20) -> tuple[int, list[str]]:
        """How many requests are UNKNOWN (waiting for a retry or an operator), with some requestIds."""
        return _guard_table(partial(self.ledger.unresolved, sample))

    def status(self, request_id: str) -> LedgerRecord | None:
        return _guard_table(partial(self.ledger.get, request_id))

    def submit(
        self, request: BudgetUpdateInput, *, caller: str, source: str, deadline: float, lease_seconds: float
    ) -> Report:
        """Apply ``request`` at most once and answer by ``deadline`` (a time.monotonic() value).

        AlipayHK gets until ``deadline - reserve_seconds``; the reserve holds one whole ledger write and
        the answer. No AWS attempt starts that could end too late for what must follow it: the claim
        leaves room for one whole write (the final one, or the claim's release), every write leaves
        the answer's margin. Nothing is claimed or sent without time for one AlipayHK attempt.
        """
        send_deadline = deadline - self.reserve_seconds
        record_deadline = deadline - ANSWER_MARGIN_SECONDS
        with aws_calls_until(record_deadline):  # a late secret only means nothing is claimed
            credentials = self.secrets.get()
        update = request.resolve(credentials.merchant_account_id)
        if not self._time_for_an_attempt(send_deadline):
            raise DependencyUnavailableError("Secrets Manager or DynamoDB", "too little time left to send")
        with aws_calls_until(record_deadline - self._aws_attempt_seconds):
            claim = self._claim(update, caller, source, lease_seconds + LEASE_MARGIN_SECONDS)
        if claim.token is None:
            assert claim.existing is not None  # noqa: S101 - _claim returns one or the other
            return Report.from_record(claim.existing)
        previous = claim.previous
        # A SENDING or UNKNOWN item may have been applied already, whatever this call finds.
        applied_before = previous is not None and (
            previous.may_have_been_applied or previous.state in (LedgerState.SENDING, LedgerState.UNKNOWN)
        )
        if applied_before and self.settings.unknown_outcome_policy is UnknownOutcomePolicy.HOLD:
            with aws_calls_until(record_deadline):
                return self._hold(update.request_id, claim.token, previous)
        if not applied_before and not self._time_for_an_attempt(send_deadline):
            # The claim took the time AlipayHK needed: release it, nothing was sent.
            with aws_calls_until(record_deadline):
                self._release(update.request_id, claim.token)
            raise DependencyUnavailableError("DynamoDB", "too slow to leave time for AlipayHK")
        result = self._send(credentials, update.to_body(), send_deadline)
        with aws_calls_until(record_deadline):
            return self._record(update.request_id, claim.token, result, applied_before)

    def _time_for_an_attempt(self, send_deadline: float) -> bool:
        return self._monotonic() + self.client.policy.min_attempt_time <= send_deadline

    def _claim(self, update: BudgetUpdate, caller: str, source: str, lease_seconds: float) -> Claim:
        claim = _guard_table(partial(self.ledger.claim, update, caller, source, lease_seconds))
        for _ in range(3):  # each loop is a lost race against another invocation for the same item
            if claim.token is not None:
                return claim
            existing = claim.existing
            assert existing is not None  # noqa: S101
            if existing.fingerprint != update.fingerprint():
                raise RequestIdReusedError(update.request_id)
            now = self._clock()
            if existing.state.final:
                return claim
            if existing.state is LedgerState.SENDING and existing.lease_live(now):
                raise RequestInProgressError(update.request_id, _retry_after(existing, now))
            if existing.state is LedgerState.UNKNOWN and (
                self.settings.unknown_outcome_policy is UnknownOutcomePolicy.HOLD
            ):
                return claim  # stays UNKNOWN until an operator reconciles it
            claim = _guard_table(partial(self.ledger.take_over, existing, lease_seconds))
        if claim.token is None:
            raise RequestInProgressError(update.request_id, 1)
        return claim

    def _send(self, credentials: Credentials, body: bytes, deadline: float) -> SendResult:
        # HOLD: an attempt that may have been applied is not retried, not even within this call.
        resend_unknown = self.settings.unknown_outcome_policy is UnknownOutcomePolicy.RESEND
        result = self.client.send(credentials, body, deadline, resend_unknown=resend_unknown)
        if not _key_may_have_rotated(result, self.settings.unknown_outcome_policy):
            return result
        try:
            with aws_calls_until(deadline - self.client.policy.min_attempt_time):  # and then one attempt
                fresh = self.secrets.get(refresh=True)
        except (DependencyUnavailableError, ConfigurationError) as exc:
            # AlipayHK's answer stands and is recorded; the next call reads the secret again.
            logger.warning("signing secret could not be re-read after AlipayHK refused a signature: %s", exc)
            return result
        if _same_keys(fresh, credentials):
            return result
        logger.info("signing secret changed after AlipayHK refused a signature; sending again")
        retried = self.client.send(fresh, body, deadline, resend_unknown=resend_unknown)
        return SendResult(result.attempts + retried.attempts, result.elapsed_seconds + retried.elapsed_seconds)

    def _record(self, request_id: str, token: str, result: SendResult, applied_before: bool) -> Report:
        final = result.final
        may_have_been_applied = applied_before or result.may_have_been_applied
        state, outcome = _settle(final.disposition, may_have_been_applied)
        report = Report(
            request_id=request_id,
            state=state,
            outcome=outcome,
            rejected=state is LedgerState.NOT_APPLIED and final.disposition is Disposition.REJECTED,
            result_info=final.result_info,
            tracer_id=final.tracer_id,
            timed_out=final.reason is Reason.TIMEOUT,
            attempts=len(result.attempts),
            alipay_seconds=result.elapsed_seconds,
        )
        # If this write fails the answer is still true; the ledger says SENDING, so the next call with
        # this requestId re-sends it once the lease ends, and AlipayHK answers the same again.
        recorded = self._finish(
            request_id,
            token,
            "ledger update after AlipayHK answered failed",
            state=state,
            attempts=len(result.attempts),
            may_have_been_applied=may_have_been_applied,
            result_info=final.result_info,
            tracer_id=final.tracer_id,
            reason=final.reason,
        )
        return report if recorded else replace(report, recorded=False)

    def _hold(self, request_id: str, token: str, previous: LedgerRecord | None) -> Report:
        """HOLD policy: a request that may have been applied is never re-sent automatically."""
        # If this write fails it is still UNKNOWN: the item stays SENDING until its lease ends, and
        # is then held again.
        recorded = self._finish(
            request_id,
            token,
            "ledger update of a held request failed",
            state=LedgerState.UNKNOWN,
            attempts=0,
            may_have_been_applied=True,
            result_info=previous.result_info if previous else None,
            tracer_id=previous.tracer_id if previous else None,
            reason="AWAITING_RECONCILIATION",
        )
        return Report(
            request_id=request_id, state=LedgerState.UNKNOWN, outcome=Outcome.UNKNOWN, replayed=True, recorded=recorded
        )

    def _release(self, request_id: str, token: str) -> None:
        """Give up a claim before anything was sent: NOT_APPLIED, so the next call sends it at once."""
        # If this write fails the item stays SENDING until its lease ends; the next call then treats
        # it as maybe sent.
        self._finish(
            request_id,
            token,
            "releasing an unsent claim failed",
            state=LedgerState.NOT_APPLIED,
            attempts=0,
            may_have_been_applied=False,
            result_info=None,
            tracer_id=None,
            reason=Reason.NO_TIME_LEFT,
        )

    def _finish(
        self,
        request_id: str,
        token: str,
        failure_message: str,
        *,
        state: LedgerState,
        attempts: int,
        may_have_been_applied: bool,
        result_info: ResultInfo | None,
        tracer_id: str | None,
        reason: str,
    ) -> bool:
        """Record a claim's end and release its lease; False (logged) when DynamoDB refused or failed."""
        try:
            self.ledger.finish(
                request_id,
                token,
                state=state,
                attempts=attempts,
                may_have_been_applied=may_have_been_applied,
                result_info=result_info,
                tracer_id=tracer_id,
                reason=reason,
                retention_seconds=self.settings.retention_seconds,
            )
        except (ClientError, BotoCoreError) as exc:
            logger.error("%s: %s", failure_message, type(exc).__name__)
            return False
        return True


def _settle(disposition: Disposition, may_have_been_applied: bool) -> tuple[LedgerState, Outcome]:
    if disposition is Disposition.SUCCEEDED:
        return LedgerState.SUCCEEDED, Outcome.SUCCEEDED
    if disposition is Disposition.FAILED:
        return LedgerState.FAILED, Outcome.FAILED
    if may_have_been_applied:
        # A refusal now does not undo an earlier attempt that may have been applied.
        return LedgerState.UNKNOWN, Outcome.UNKNOWN
    if disposition is Disposition.REJECTED:
        return LedgerState.NOT_APPLIED, Outcome.FAILED
    return LedgerState.NOT_APPLIED, Outcome.UNKNOWN  # nothing left this process: not applied, not final


def _key_may_have_rotated(result: SendResult, policy: UnknownOutcomePolicy) -> bool:
    final = result.final
    if final.disposition is Disposition.REJECTED:
        return final.result_info is not None and final.result_info.result_code.upper() in _KEY_REFUSALS
    # A response signature that fails may mean AlipayHK's key rotated; resending is a RESEND-only step.
    return final.reason is Reason.BAD_SIGNATURE and policy is UnknownOutcomePolicy.RESEND


def _same_keys(a: Credentials, b: Credentials) -> bool:
    # Parsed keys are cached by their text, so unchanged key material yields the same objects.
    return (
        a.client_id == b.client_id
        and a.key_version == b.key_version
        and a.private_key is b.private_key
        and a.alipay_public_key is b.alipay_public_key
    )


def _retry_after(record: LedgerRecord, now: float) -> int:
    lease_end = record.lease_expires_at or now
    return max(1, min(30, int(lease_end - now) + 1))


def _guard_table(call: Callable[[], _T]) -> _T:
    try:
        return call()
    except (ClientError, BotoCoreError) as exc:
        raise dependency_error(exc, "DynamoDB", _TABLE_CONFIGURATION_CODES, "ledger table cannot be used") from None
