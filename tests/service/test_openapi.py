"""The committed OpenAPI document is the one the code generates (CI fails on drift)."""

from __future__ import annotations

import json

from ipass_budget.api import MAX_BODY_BYTES
from ipass_budget.models import MAX_NUMBER, TOKEN_FIELDS
from ipass_local.openapi import OPENAPI_PATH, build_document, main, render


def test_committed_document_matches_the_code() -> None:
    assert OPENAPI_PATH.read_text(encoding="utf-8") == render(), "run `make openapi` and commit docs/openapi.json"
    assert main(["--check"]) == 0


def test_document_carries_the_contract_rules() -> None:
    document = build_document()
    request = document["components"]["schemas"]["BudgetUpdateRequest"]
    assert request["additionalProperties"] is False
    assert request["properties"]["number"]["maximum"] == MAX_NUMBER
    assert request["properties"]["requestId"]["maxLength"] == TOKEN_FIELDS["requestId"] == 128
    post = document["paths"]["/budget-updates"]["post"]["responses"]
    assert set(post) == {"200", "400", "403", "404", "409", "413", "422", "429", "500", "502", "503", "504"}
    assert str(MAX_BODY_BYTES) in post["413"]["description"]
    assert "Retry-After" in post["503"]["headers"]
    json.dumps(document)  # serialisable as is
