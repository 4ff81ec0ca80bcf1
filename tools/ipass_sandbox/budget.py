"""The updateBudget request body and the budget rules AlipayHK documents for it."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ipass_budget.models import MAX_NUMBER, MIN_NUMBER, UpdateType
from ipass_budget.outcome import ResultInfo
from ipass_sandbox.answers import (
    PARAM_ILLEGAL,
    PASS_TEMPLATE_HAS_NOT_EXIT,
    PASS_TEMPLATE_STATUS_ILLEGAL,
    failure,
    success,
)
from ipass_sandbox.templates import (
    MAX_STOCK,
    MERCHANT_ACCOUNT_ID_MAX,
    TEMPLATE_CODE_MAX,
    UPDATABLE_STATUSES,
    Template,
)

REQUEST_ID_MAX = 128

# What a repeated requestId must carry unchanged: merchant, template, type and number.
Payload = tuple[str, str, str, int]


class ParamIllegal(ValueError):
    """The body breaks the documented parameter rules; the message names the field(s)."""


@dataclass(frozen=True, slots=True)
class BudgetRequest:
    request_id: str
    merchant_account_id: str
    template_code: str
    update_type: UpdateType
    number: int

    @property
    def payload(self) -> Payload:
        return (self.merchant_account_id, self.template_code, str(self.update_type), self.number)


def peek_request_id(body: bytes) -> str | None:
    """The body's requestId if it has a string one, whatever else is wrong with the body."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    request_id = data.get("requestId") if isinstance(data, dict) else None
    return request_id if isinstance(request_id, str) and request_id else None


def parse_budget_request(body: bytes) -> BudgetRequest:
    """Validate the body; unknown extra fields are ignored, as gateways usually do."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ParamIllegal("request body must be a UTF-8 JSON object") from None
    if not isinstance(data, dict):
        raise ParamIllegal("request body must be a JSON object")
    problems: list[str] = []
    request_id = _string(data, "requestId", REQUEST_ID_MAX, problems)
    # merchantId is the deprecated name; it is read only when merchantAccountId is absent.
    merchant_field = "merchantAccountId" if "merchantAccountId" in data or "merchantId" not in data else "merchantId"
    merchant = _string(data, merchant_field, MERCHANT_ACCOUNT_ID_MAX, problems)
    template_code = _string(data, "templateCode", TEMPLATE_CODE_MAX, problems)
    update_type = data.get("updateType")
    if not isinstance(update_type, str) or update_type not in tuple(UpdateType):
        problems.append("updateType must be APPEND_BUDGET or SUBTRACT_BUDGET")
    number = data.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or not MIN_NUMBER <= number <= MAX_NUMBER:
        problems.append(f"number must be a JSON integer from {MIN_NUMBER} to {MAX_NUMBER}")
    # The None checks repeat what ``problems`` already says; they narrow the types.
    if (
        problems
        or request_id is None
        or merchant is None
        or template_code is None
        or not isinstance(update_type, str)
        or not isinstance(number, int)
    ):
        raise ParamIllegal("; ".join(problems))
    return BudgetRequest(request_id, merchant, template_code, UpdateType(update_type), number)


def _string(data: dict[str, object], name: str, max_length: int, problems: list[str]) -> str | None:
    value = data.get(name)
    if isinstance(value, str) and 1 <= len(value) <= max_length:
        return value
    problems.append(f"{name} must be a string of 1-{max_length} characters")
    return None


def decide(template: Template | None, request: BudgetRequest) -> tuple[Template | None, ResultInfo]:
    """Apply the budget rules: the updated template (None when nothing changes) and the answer."""
    if template is None or template.merchant_account_id != request.merchant_account_id:
        # AlipayHK does not tell "no such template" from "not yours": both are PASS_TEMPLATE_HAS_NOT_EXIT.
        return None, failure(
            PASS_TEMPLATE_HAS_NOT_EXIT,
            f"template {request.template_code} does not exist for merchant {request.merchant_account_id}",
        )
    if template.status not in UPDATABLE_STATUSES:
        return None, failure(
            PASS_TEMPLATE_STATUS_ILLEGAL,
            f"template {template.template_code} is {template.status}; closed and expired templates cannot be updated",
        )
    if request.update_type is UpdateType.APPEND_BUDGET:
        final = template.budget + request.number
        if final > MAX_STOCK:
            return None, failure(PARAM_ILLEGAL, f"final stock {final} would exceed the maximum of {MAX_STOCK}")
    else:
        final = template.budget - request.number
        if final < template.issued:
            return None, failure(
                PARAM_ILLEGAL,
                f"final stock {final} would fall below the {template.issued} cards already issued",
            )
    return template.with_budget(final), success()
