"""EventBridge Scheduler input (contract section 5) and its deterministic requestId."""

from __future__ import annotations

import hashlib
from typing import Any

from ipass_budget.errors import FieldError, InvalidRequestError
from ipass_budget.models import BudgetUpdateInput, parse_budget_update

SCHEDULE_REQUEST_ID_PREFIX = "sch-"
_FIELDS = frozenset({"templateCode", "updateType", "number", "merchantAccountId", "schedule"})


def schedule_request_id(schedule_arn: str, scheduled_time: str) -> str:
    """Same schedule occurrence, same requestId: every retry and duplicate delivery is one request.

    ``sch-`` + the first 48 hex digits of SHA-256(arn LF scheduledTime): 52 printable characters,
    valid per contract section 4, and collision-free in practice (192 bits).
    """
    digest = hashlib.sha256(f"{schedule_arn}\n{scheduled_time}".encode()).hexdigest()
    return SCHEDULE_REQUEST_ID_PREFIX + digest[:48]


# The Input of the template's UnresolvedRequestsCheck schedule (an extension of contract section 5).
UNRESOLVED_CHECK_KEY = "ipassBudgetCheck"
UNRESOLVED_CHECK_VALUE = "unresolved-requests"


def is_unresolved_check(event: object) -> bool:
    return isinstance(event, dict) and event.get(UNRESOLVED_CHECK_KEY) == UNRESOLVED_CHECK_VALUE


def is_schedule_event(event: object) -> bool:
    return isinstance(event, dict) and "schedule" in event and "httpMethod" not in event


def parse_schedule_input(event: dict[str, Any]) -> BudgetUpdateInput:
    """Validate a schedule's Input and turn it into a budget update with its derived requestId."""
    errors = [FieldError(str(name), "unknown field") for name in event if name not in _FIELDS]
    schedule = event.get("schedule")
    if not isinstance(schedule, dict):
        raise InvalidRequestError([*errors, FieldError("schedule", "must be an object with arn and scheduledTime")])
    for name in ("arn", "scheduledTime"):
        value = schedule.get(name)
        if not isinstance(value, str) or not value.strip():
            errors.append(FieldError(f"schedule.{name}", "must be a non-empty string"))
    if errors:
        raise InvalidRequestError(errors)
    data = {k: v for k, v in event.items() if k != "schedule"}
    data["requestId"] = schedule_request_id(schedule["arn"], schedule["scheduledTime"])
    return parse_budget_update(data)
