"""Redeemable-card templates as the sandbox keeps them: status, stock ("budget") and issued cards."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

# AlipayHK: "The final stock must be within x to 1,000,000, where x is the number of issued cards."
MAX_STOCK = 1_000_000
TEMPLATE_CODE_MAX = 32
MERCHANT_ACCOUNT_ID_MAX = 64


class TemplateStatus(StrEnum):
    VALID = "valid"
    FROZEN = "frozen"
    PAUSED = "paused"
    CLOSED = "closed"
    EXPIRED = "expired"


# The API page forbids budget updates only for closed and expired templates, so frozen and paused
# ones accept them (a frozen or paused template can become valid again and needs its stock then).
UPDATABLE_STATUSES = frozenset({TemplateStatus.VALID, TemplateStatus.FROZEN, TemplateStatus.PAUSED})


class TemplateError(ValueError):
    """A template definition (config entry or admin request) that the sandbox cannot accept."""


@dataclass(frozen=True, slots=True)
class Template:
    template_code: str
    merchant_account_id: str
    status: TemplateStatus
    budget: int
    issued: int

    def view(self) -> dict[str, Any]:
        """What ``GET /__sandbox/templates/{templateCode}`` answers (contract section 6), nothing more."""
        return {
            "templateCode": self.template_code,
            "status": str(self.status),
            "budget": self.budget,
            "issued": self.issued,
        }

    def to_dict(self) -> dict[str, Any]:
        """The config-file form, which also names the owning merchant."""
        return {
            "templateCode": self.template_code,
            "merchantAccountId": self.merchant_account_id,
            "status": str(self.status),
            "budget": self.budget,
            "issued": self.issued,
        }

    def with_budget(self, budget: int) -> Template:
        return replace(self, budget=budget)


_FIELDS = ("templateCode", "merchantAccountId", "status", "budget", "issued")


def parse_template(data: object, template_code: str | None = None) -> Template:
    """Validate one template definition.

    ``template_code`` comes from the URL of ``PUT /__sandbox/templates/{templateCode}``; the body may
    then omit ``templateCode`` or repeat the same value. Unknown fields are refused so that a typo
    (``"issue": 5``) does not silently leave a default in place.
    """
    if not isinstance(data, dict):
        raise TemplateError("template must be a JSON object")
    unknown = sorted(str(name) for name in data if name not in _FIELDS)
    if unknown:
        raise TemplateError(f"unknown template fields: {', '.join(unknown)}")
    code = data.get("templateCode", template_code)
    if template_code is not None and code != template_code:
        raise TemplateError("templateCode in the body differs from the one in the path")
    code = _check_string("templateCode", code, TEMPLATE_CODE_MAX)
    merchant = _check_string("merchantAccountId", data.get("merchantAccountId"), MERCHANT_ACCOUNT_ID_MAX)
    status = data.get("status")
    if status not in tuple(TemplateStatus):
        raise TemplateError(f"status must be one of {', '.join(TemplateStatus)}")
    budget = _check_count("budget", data.get("budget"), MAX_STOCK)
    issued = _check_count("issued", data.get("issued"), budget)
    return Template(code, merchant, TemplateStatus(status), budget, issued)


def _check_string(name: str, value: object, max_length: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_length:
        raise TemplateError(f"{name} must be a string of 1-{max_length} characters")
    return value


def _check_count(name: str, value: object, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        bound = "the budget" if name == "issued" else str(maximum)
        raise TemplateError(f"{name} must be a JSON integer from 0 to {bound}")
    return value
