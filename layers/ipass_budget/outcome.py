"""What an AlipayHK answer means for the caller: the classification table of the service."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """The outcome reported to callers (contract section 4)."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"


class Disposition(StrEnum):
    """Finer than Outcome: says whether the outcome is final and whether a retry is safe."""

    SUCCEEDED = "SUCCEEDED"  # S with a verified signature: applied
    FAILED = "FAILED"  # F from the budget logic: final, not applied
    REJECTED = "REJECTED"  # F before the budget logic ran: not applied, same requestId may be retried
    UNKNOWN = "UNKNOWN"  # may or may not have been applied: re-send the same requestId or reconcile

    @property
    def outcome(self) -> Outcome:
        return Outcome.FAILED if self is Disposition.REJECTED else Outcome(self.value)

    @property
    def final(self) -> bool:
        return self in (Disposition.SUCCEEDED, Disposition.FAILED)


class Reason(StrEnum):
    """Why an attempt ended as it did; UNKNOWN dispositions always carry one other than ANSWERED."""

    ANSWERED = "ANSWERED"  # AlipayHK gave a usable answer
    STATUS_UNKNOWN = "STATUS_UNKNOWN"  # resultStatus U
    RATE_LIMITED = "RATE_LIMITED"  # REQUEST_TRAFFIC_EXCEED_LIMIT
    NOT_SENT = "NOT_SENT"  # connection failed before any byte left: certainly not applied
    TIMEOUT = "TIMEOUT"  # no answer in time after the request may have been sent
    CONNECTION_LOST = "CONNECTION_LOST"  # connection dropped after the request may have been sent
    HTTP_STATUS = "HTTP_STATUS"  # an HTTP status other than 200
    BAD_SIGNATURE = "BAD_SIGNATURE"  # the response signature did not verify
    UNSIGNED_SUCCESS = "UNSIGNED_SUCCESS"  # S without a signature
    PARTLY_SIGNED = "PARTLY_SIGNED"  # only one of Signature / Response-Time
    MALFORMED = "MALFORMED"  # unreadable body or headers
    NO_TIME_LEFT = "NO_TIME_LEFT"  # the deadline left no room for an attempt


# F codes that AlipayHK's gateway returns before the budget logic runs: nothing was applied and the
# same requestId can be sent again once the cause (keys, client, permissions) is fixed. The AMS
# spellings are included because the same gateway family uses them.
REJECTED_BEFORE_PROCESSING = frozenset(
    {
        "INVALID_SIGNATURE",
        "SIGNATURE_INVALID",
        "KEY_NOT_FOUND",
        "INVALID_CLIENT",
        "CLIENT_INVALID",
        "INVALID_CLIENT_STATUS",
        "ACCESS_DENIED",
        "INVALID_API",
        "METHOD_NOT_SUPPORTED",
        "MEDIA_TYPE_NOT_ACCEPTABLE",
        "INVALID_ACCESS_TOKEN",
    }
)
# Codes that mean "not determined" whatever resultStatus says.
UNKNOWN_CODES = {"REQUEST_TRAFFIC_EXCEED_LIMIT": Reason.RATE_LIMITED, "UNKNOWN_EXCEPTION": Reason.STATUS_UNKNOWN}


@dataclass(frozen=True, slots=True)
class ResultInfo:
    result_status: str
    result_code: str
    result_msg: str

    def as_dict(self) -> dict[str, str]:
        return {"resultStatus": self.result_status, "resultCode": self.result_code, "resultMsg": self.result_msg}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultInfo:
        return cls(str(data["resultStatus"]), str(data["resultCode"]), str(data.get("resultMsg", "")))


def classify(info: ResultInfo) -> tuple[Disposition, Reason]:
    """Map a (trusted) resultInfo to a disposition. Anything not clearly S or F is UNKNOWN."""
    status = info.result_status.upper()
    code = info.result_code.upper()
    if code in UNKNOWN_CODES:
        return Disposition.UNKNOWN, UNKNOWN_CODES[code]
    if status == "S":
        return Disposition.SUCCEEDED, Reason.ANSWERED
    if status == "F":
        if code in REJECTED_BEFORE_PROCESSING:
            return Disposition.REJECTED, Reason.ANSWERED
        return Disposition.FAILED, Reason.ANSWERED
    if status == "U":
        return Disposition.UNKNOWN, Reason.STATUS_UNKNOWN
    return Disposition.UNKNOWN, Reason.MALFORMED


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one HTTP attempt established."""

    disposition: Disposition
    reason: Reason
    result_info: ResultInfo | None = None
    verified: bool = False
    tracer_id: str | None = None
    http_status: int | None = None
    detail: str = ""

    @property
    def may_have_been_sent(self) -> bool:
        return self.reason not in (Reason.NOT_SENT, Reason.NO_TIME_LEFT)

    @property
    def may_have_been_applied(self) -> bool:
        """An S, or an answerless attempt that may have reached AlipayHK; F answers were not applied."""
        if self.disposition is Disposition.UNKNOWN:
            return self.may_have_been_sent
        return self.disposition is Disposition.SUCCEEDED
