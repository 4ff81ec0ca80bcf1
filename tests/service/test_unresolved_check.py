"""The UnresolvedRequestsCheck schedule counts UNKNOWN requests from the ledger's sparse index."""

from __future__ import annotations

import json
from types import ModuleType

import pytest

from ipass_budget.schedule import UNRESOLVED_CHECK_KEY, UNRESOLVED_CHECK_VALUE
from ipass_local.lambda_context import LocalLambdaContext
from tests.service.support import ServiceEnv, call_api, new_id, update

CHECK_EVENT = {UNRESOLVED_CHECK_KEY: UNRESOLVED_CHECK_VALUE}


def run_check(handler: ModuleType, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, object], float]:
    capsys.readouterr()
    result = handler.lambda_handler(CHECK_EVENT, LocalLambdaContext())
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    values = [line["UnresolvedRequests"] for line in emf if "UnresolvedRequests" in line]
    assert len(values) == 1, "the metric is published on every check, zero included"
    published = values[0][0] if isinstance(values[0], list) else values[0]
    return result, float(published)


def test_unknown_requests_are_counted_until_they_resolve(
    handler: ModuleType, service_env: ServiceEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_check(handler, capsys) == ({"unresolved": 0, "requestIds": []}, 0.0)
    unknown, done = new_id(), new_id()
    service_env.admin.add_fault(unknown, "U_BEFORE_APPLY")
    assert call_api(handler, "POST", "/budget-updates", update(unknown, 1)).status == 503
    assert call_api(handler, "POST", "/budget-updates", update(done, 1)).status == 200

    result, published = run_check(handler, capsys)

    assert result == {"unresolved": 1, "requestIds": [unknown]}
    assert published == 1.0

    service_env.admin.clear_faults()
    assert call_api(handler, "POST", "/budget-updates", update(unknown, 1)).status == 200
    assert run_check(handler, capsys) == ({"unresolved": 0, "requestIds": []}, 0.0)
