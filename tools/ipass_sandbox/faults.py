"""Injected faults: what the sandbox does instead of (or after) answering normally."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DEFAULT_DELAY_SECONDS = 5.0
# A bound keeps a typo (delaySeconds 3600) from parking a handler thread for an hour.
MAX_DELAY_SECONDS = 300.0


class FaultKind(StrEnum):
    U_BEFORE_APPLY = "U_BEFORE_APPLY"
    U_AFTER_APPLY = "U_AFTER_APPLY"
    HTTP_500_AFTER_APPLY = "HTTP_500_AFTER_APPLY"
    HTTP_503_BEFORE_APPLY = "HTTP_503_BEFORE_APPLY"
    DROP_BEFORE_APPLY = "DROP_BEFORE_APPLY"
    DROP_AFTER_APPLY = "DROP_AFTER_APPLY"
    DELAY_AFTER_APPLY = "DELAY_AFTER_APPLY"
    CORRUPT_SIGNATURE = "CORRUPT_SIGNATURE"
    UNSIGNED_SUCCESS = "UNSIGNED_SUCCESS"
    PARTLY_SIGNED = "PARTLY_SIGNED"
    TRAFFIC_LIMIT = "TRAFFIC_LIMIT"

    @property
    def applies(self) -> bool:
        """Whether the normal (idempotent) budget logic runs before the fault shapes the answer."""
        return self not in _BEFORE_APPLY


_BEFORE_APPLY = frozenset(
    {
        FaultKind.U_BEFORE_APPLY,
        FaultKind.HTTP_503_BEFORE_APPLY,
        FaultKind.DROP_BEFORE_APPLY,
        FaultKind.TRAFFIC_LIMIT,
    }
)


class FaultError(ValueError):
    """A fault definition the sandbox cannot accept."""


@dataclass(frozen=True, slots=True)
class Fault:
    request_id: str
    kind: FaultKind
    # 1-based arrival number of the requestId at the API path; None means every arrival.
    attempt: int | None = None
    delay_seconds: float = DEFAULT_DELAY_SECONDS

    def matches(self, request_id: str, arrival: int) -> bool:
        return self.request_id == request_id and (self.attempt is None or self.attempt == arrival)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"requestId": self.request_id, "fault": str(self.kind), "attempt": self.attempt}
        if self.kind is FaultKind.DELAY_AFTER_APPLY:
            data["delaySeconds"] = self.delay_seconds
        return data


def parse_fault(data: object) -> Fault:
    if not isinstance(data, dict):
        raise FaultError("fault must be a JSON object")
    unknown = sorted(str(name) for name in data if name not in ("requestId", "fault", "attempt", "delaySeconds"))
    if unknown:
        raise FaultError(f"unknown fault fields: {', '.join(unknown)}")
    request_id = data.get("requestId")
    if not isinstance(request_id, str) or not request_id:
        raise FaultError("requestId must be a non-empty string")
    kind = data.get("fault")
    if kind not in tuple(FaultKind):
        raise FaultError(f"fault must be one of {', '.join(FaultKind)}")
    attempt = data.get("attempt")
    if attempt is not None and (not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1):
        raise FaultError("attempt must be a JSON integer >= 1 (or omitted for every arrival)")
    delay = data.get("delaySeconds", DEFAULT_DELAY_SECONDS)
    if (
        not isinstance(delay, int | float)
        or isinstance(delay, bool)
        or not math.isfinite(delay)
        or not 0 <= delay <= MAX_DELAY_SECONDS
    ):
        raise FaultError(f"delaySeconds must be a number from 0 to {MAX_DELAY_SECONDS:g}")
    return Fault(request_id, FaultKind(kind), attempt, float(delay))
