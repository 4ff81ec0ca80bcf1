"""The committed OpenAPI document (docs/openapi.json), generated from the code's own rules.

Field limits come from ipass_budget.models, status codes from ipass_budget.api, so the document
cannot drift from what the handler does; `make openapi` rewrites it and a test fails on drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ipass_budget.api import (
    FAILED_STATUS_BY_CODE,
    MAX_BODY_BYTES,
    OTHER_FAILED_STATUS,
    REJECTED_STATUS,
)
from ipass_budget.ledger import LedgerState
from ipass_budget.models import MAX_NUMBER, MIN_NUMBER, TOKEN_FIELDS, UpdateType
from ipass_budget.outcome import Outcome
from ipass_local.template import REPO_ROOT

OPENAPI_PATH = REPO_ROOT / "docs" / "openapi.json"
PRINTABLE_ASCII_PATTERN = "^[\\x21-\\x7E]+$"


def _token(max_length: int, description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "pattern": PRINTABLE_ASCII_PATTERN,
        "description": description,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: str = "Answer", retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}
    if retry_after:
        response["headers"] = {
            "Retry-After": {"description": "seconds to wait before calling again", "schema": {"type": "integer"}}
        }
    return response


def _failed_rows() -> str:
    rows = [f"{status} for AlipayHK F {code}" for code, status in sorted(FAILED_STATUS_BY_CODE.items())]
    return "; ".join(rows)


def build_document() -> dict[str, Any]:
    request_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["requestId", "templateCode", "updateType", "number"],
        "properties": {
            "requestId": _token(TOKEN_FIELDS["requestId"], "the caller's idempotency key, forwarded to AlipayHK"),
            "templateCode": _token(TOKEN_FIELDS["templateCode"], "AlipayHK template code"),
            "updateType": {"type": "string", "enum": [str(t) for t in UpdateType]},
            "number": {"type": "integer", "minimum": MIN_NUMBER, "maximum": MAX_NUMBER},
            "merchantAccountId": _token(TOKEN_FIELDS["merchantAccountId"], "defaults to the signing secret's"),
        },
    }
    result_info = {
        "type": "object",
        "required": ["resultStatus", "resultCode", "resultMsg"],
        "properties": {
            "resultStatus": {"type": "string", "enum": ["S", "F", "U"]},
            "resultCode": {"type": "string"},
            "resultMsg": {"type": "string"},
        },
    }
    error = {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
    answer = {
        "type": "object",
        "properties": {
            "requestId": {"type": "string"},
            "outcome": {"type": "string", "enum": [str(o) for o in Outcome]},
            "resultInfo": _ref("ResultInfo"),
            "tracerId": {"type": "string"},
            "replayed": {"type": "boolean"},
            "error": _ref("Error"),
        },
    }
    record = {
        "type": "object",
        "required": ["requestId", "state", "outcome", "attempts", "createdAt", "updatedAt", "caller"],
        "properties": {
            "requestId": {"type": "string"},
            "state": {"type": "string", "enum": [str(s) for s in LedgerState]},
            "outcome": {"type": "string", "enum": [str(o) for o in Outcome]},
            "merchantAccountId": {"type": "string"},
            "templateCode": {"type": "string"},
            "updateType": {"type": "string", "enum": [str(t) for t in UpdateType]},
            "number": {"type": "integer"},
            "resultInfo": {"nullable": True, "allOf": [_ref("ResultInfo")]},
            "tracerId": {"type": "string", "nullable": True},
            "attempts": {"type": "integer", "minimum": 0},
            "createdAt": {"type": "string", "format": "date-time"},
            "updatedAt": {"type": "string", "format": "date-time"},
            "caller": {"type": "string", "description": "IAM principal ARN, or schedule:<schedule ARN>"},
            "source": {"type": "string", "enum": ["api", "schedule"]},
            "resolution": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    unknown = "outcome UNKNOWN (AlipayHK U, HTTP error, unverifiable answer, rate limit): call again, same requestId"
    # API Gateway's own answers (template.yaml GatewayResponses give them the same JSON error shape).
    refused_by_iam = _answer(
        "API Gateway refused the caller before the function ran: SigV4 signature missing, invalid or "
        "expired, or IAM / the resource policy denies execute-api:Invoke (error.code is API Gateway's "
        "response type, e.g. MISSING_AUTHENTICATION_TOKEN, ACCESS_DENIED, INVALID_SIGNATURE)"
    )
    throttled = _answer(
        "API Gateway throttled the call before the function ran (THROTTLED, Retry-After); nothing was sent",
        retry_after=True,
    )
    post_responses = {
        "200": _answer("SUCCEEDED: AlipayHK answered S with a verified signature (or the stored answer, replayed)"),
        "400": _answer(f"INVALID_REQUEST (details name each field), or FAILED/UPSTREAM_FAILED: {_failed_rows()}"),
        "403": refused_by_iam,
        "404": _answer("FAILED/UPSTREAM_FAILED: AlipayHK F PASS_TEMPLATE_HAS_NOT_EXIT"),
        "409": _answer(
            "REQUEST_IN_PROGRESS (same requestId in flight; Retry-After), or FAILED/UPSTREAM_FAILED: "
            "AlipayHK F PASS_TEMPLATE_STATUS_ILLEGAL",
            retry_after=True,
        ),
        "413": _answer(f"PAYLOAD_TOO_LARGE: body over {MAX_BODY_BYTES} bytes"),
        str(OTHER_FAILED_STATUS): _answer(
            "REQUEST_ID_REUSED (same requestId, different payload), or FAILED/UPSTREAM_FAILED: another AlipayHK F"
        ),
        "429": throttled,
        "500": _answer("MISCONFIGURED: signing secret or settings unusable; nothing was sent"),
        str(REJECTED_STATUS): _answer(
            "FAILED/UPSTREAM_REJECTED: AlipayHK refused before its budget logic ran (INVALID_SIGNATURE, "
            "KEY_NOT_FOUND, ...); not final, retry the same requestId once fixed"
        ),
        "503": _answer(
            f"{unknown}; or the function failed (API Gateway); or DEPENDENCY_UNAVAILABLE (nothing sent)",
            retry_after=True,
        ),
        "504": _answer("outcome UNKNOWN after a timeout: call again with the same requestId", retry_after=True),
    }
    get_responses = {
        "200": _answer("the ledger record", schema="LedgerRecord"),
        "400": _answer("INVALID_REQUEST: requestId is not 1-128 printable ASCII characters"),
        "403": refused_by_iam,
        "404": _answer("NOT_FOUND: no request with this requestId is recorded"),
        "429": throttled,
        "500": _answer("MISCONFIGURED"),
        "503": _answer("DEPENDENCY_UNAVAILABLE, or the function failed (API Gateway)", retry_after=True),
        "504": _answer("API Gateway: the function timed out; reading is safe to retry", retry_after=True),
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ipass-budget",
            "version": "1",
            "description": "Change the budget of AlipayHK iPass redeemable-card templates, at most once per requestId.",
        },
        "servers": [
            {
                "url": "https://{restApiId}.execute-api.{region}.amazonaws.com/{stage}",
                "variables": {
                    "restApiId": {"default": "example"},
                    "region": {"default": "ap-east-1"},
                    "stage": {"default": "dev"},
                },
            }
        ],
        "security": [{"sigv4": []}],
        "paths": {
            "/budget-updates": {
                "post": {
                    "operationId": "postBudgetUpdate",
                    "summary": "Apply a budget change once per requestId",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("BudgetUpdateRequest")}},
                    },
                    "responses": post_responses,
                }
            },
            "/budget-updates/{requestId}": {
                "get": {
                    "operationId": "getBudgetUpdate",
                    "summary": "The ledger record of a requestId",
                    "parameters": [
                        {
                            "name": "requestId",
                            "in": "path",
                            "required": True,
                            "schema": _token(TOKEN_FIELDS["requestId"], "the requestId"),
                        }
                    ],
                    "responses": get_responses,
                }
            },
        },
        "components": {
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "x-amazon-apigateway-authtype": "awsSigv4",
                }
            },
            "schemas": {
                "BudgetUpdateRequest": request_schema,
                "ResultInfo": result_info,
                "Error": error,
                "Answer": answer,
                "LedgerRecord": record,
            },
        },
    }


def render() -> str:
    return json.dumps(build_document(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m ipass_local.openapi [--check]``: write docs/openapi.json, or fail if it is stale."""
    args = sys.argv[1:] if argv is None else argv
    current = OPENAPI_PATH.read_text(encoding="utf-8") if OPENAPI_PATH.exists() else ""
    if "--check" in args:
        if current != render():
            print(f"{OPENAPI_PATH} is out of date: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    Path(OPENAPI_PATH).write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
