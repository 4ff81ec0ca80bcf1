"""The budget-update request: validation (contract section 4) and its one canonical wire form."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ipass_budget.errors import FieldError, InvalidRequestError

MIN_NUMBER = 1
MAX_NUMBER = 999_999


class UpdateType(StrEnum):
    APPEND_BUDGET = "APPEND_BUDGET"
    SUBTRACT_BUDGET = "SUBTRACT_BUDGET"


# field name -> maximum length; all share the printable-ASCII-without-space rule.
TOKEN_FIELDS = {"requestId": 128, "templateCode": 32, "merchantAccountId": 64}
_REQUIRED = ("requestId", "templateCode", "updateType", "number")
_ALLOWED = frozenset((*_REQUIRED, "merchantAccountId"))


def token_problem(value: object, max_length: int) -> str | None:
    """Why ``value`` is not a 1..max_length string of printable ASCII without spaces, or None."""
    if not isinstance(value, str):
        return f"must be a string, got {_json_type(value)}"
    if not 1 <= len(value) <= max_length:
        return f"must be 1-{max_length} characters, got {len(value)}"
    if not all("\x21" <= ch <= "\x7e" for ch in value):
        return "must contain only printable ASCII characters without spaces (0x21-0x7E)"
    return None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


@dataclass(frozen=True, slots=True)
class BudgetUpdateInput:
    """A validated caller request; ``merchant_account_id`` is None when the caller omitted it."""

    request_id: str
    template_code: str
    update_type: UpdateType
    number: int
    merchant_account_id: str | None = None

    def resolve(self, default_merchant_account_id: str) -> BudgetUpdate:
        return BudgetUpdate(
            request_id=self.request_id,
            merchant_account_id=self.merchant_account_id or default_merchant_account_id,
            template_code=self.template_code,
            update_type=self.update_type,
            number=self.number,
        )


@dataclass(frozen=True, slots=True)
class BudgetUpdate:
    """Exactly what is sent to AlipayHK."""

    request_id: str
    merchant_account_id: str
    template_code: str
    update_type: UpdateType
    number: int

    def to_dict(self) -> dict[str, Any]:
        # Field order follows AlipayHK's documentation; it is part of the canonical form.
        return {
            "requestId": self.request_id,
            "merchantAccountId": self.merchant_account_id,
            "templateCode": self.template_code,
            "updateType": str(self.update_type),
            "number": self.number,
        }

    def to_body(self) -> bytes:
        """The canonical compact JSON: these bytes are signed and sent, unchanged, on every attempt."""
        return canonical_json(self.to_dict())

    def fingerprint(self) -> str:
        """SHA-256 of the canonical body: equal payloads, and only they, share a fingerprint."""
        return hashlib.sha256(self.to_body()).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def parse_budget_update(data: object) -> BudgetUpdateInput:
    """Validate a decoded JSON request body; raise InvalidRequestError naming every bad field."""
    if not isinstance(data, dict):
        raise InvalidRequestError([FieldError("body", f"must be a JSON object, got {_json_type(data)}")])
    errors = [FieldError(str(name), "unknown field") for name in data if name not in _ALLOWED]
    errors += [FieldError(name, "is required") for name in _REQUIRED if name not in data]
    for name, max_length in TOKEN_FIELDS.items():
        if name in data and (problem := token_problem(data[name], max_length)):
            errors.append(FieldError(name, problem))
    if "updateType" in data and data["updateType"] not in tuple(UpdateType):
        errors.append(FieldError("updateType", "must be exactly APPEND_BUDGET or SUBTRACT_BUDGET"))
    if "number" in data:
        number = data["number"]
        if not isinstance(number, int) or isinstance(number, bool):
            errors.append(FieldError("number", f"must be a JSON integer, got {_json_type(number)}"))
        elif not MIN_NUMBER <= number <= MAX_NUMBER:
            errors.append(FieldError("number", f"must be between {MIN_NUMBER} and {MAX_NUMBER}, got {number}"))
    if errors:
        raise InvalidRequestError(errors)
    return BudgetUpdateInput(
        request_id=data["requestId"],
        template_code=data["templateCode"],
        update_type=UpdateType(data["updateType"]),
        number=data["number"],
        merchant_account_id=data.get("merchantAccountId"),
    )
