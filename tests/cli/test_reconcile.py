"""ipass-budget reconcile: settling UNKNOWN (and abandoned SENDING) requests in the ledger, and refusing the rest."""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable

import pytest

from ipass_budget.ledger import Ledger
from ipass_budget.models import BudgetUpdate, UpdateType
from ipass_sandbox.config import DEMO_MERCHANT_ACCOUNT_ID
from tests.cli.support import CliResult
from tests.service.support import ServiceEnv, new_id

Cli = Callable[..., CliResult]


def unknown_request(cli: Cli, api: str, service_env: ServiceEnv) -> str:
    """A request left UNKNOWN: AlipayHK answers U to every attempt."""
    request_id = new_id()
    service_env.admin.add_fault(request_id, "U_BEFORE_APPLY")
    result = cli("update", "--api", api, "--template", "DEMO-VALID", "--append", "3", "--request-id", request_id)
    assert result.code == 5
    service_env.admin.clear_faults()
    return request_id


def test_applied_makes_it_succeeded_recorded_with_who_and_why(cli: Cli, api: str, service_env: ServiceEnv) -> None:
    request_id = unknown_request(cli, api, service_env)

    result = cli("reconcile", request_id, "--applied", "--table", service_env.table_name, "--note", "portal shows +3")

    assert result.code == 0
    assert f"{request_id} is now SUCCEEDED" in result.out
    status = cli("status", request_id, "--api", api, "--json").json()["body"]
    assert status["state"] == "SUCCEEDED"
    resolution = status["resolution"]
    assert resolution["applied"] == "true"
    assert resolution["note"] == "portal shows +3"
    assert resolution["by"].startswith("arn:aws:")  # moto's STS answers get_caller_identity
    assert resolution["at"]
    # The decision is replayed: the same update is answered SUCCEEDED without being sent again.
    before = service_env.budget()
    again = cli("update", "--api", api, "--template", "DEMO-VALID", "--append", "3", "--request-id", request_id)
    assert (again.code, service_env.budget()) == (0, before)
    assert again.out.startswith("SUCCEEDED (replayed)")


def test_not_applied_with_json_and_the_local_user_when_sts_is_unreachable(
    cli: Cli, api: str, service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch, unused_port: int
) -> None:
    request_id = unknown_request(cli, api, service_env)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{unused_port}")

    # --table defaults to LEDGER_TABLE_NAME, which service_env sets.
    result = cli("reconcile", request_id, "--not-applied", "--json", "--retention-days", "2")

    assert result.code == 0
    record = result.json()["record"]
    assert (record["state"], record["outcome"]) == ("FAILED", "FAILED")
    assert record["resolution"]["applied"] == "false"
    assert record["resolution"]["by"] == f"local:{getpass.getuser()}"
    item = service_env.ledger_item(request_id)
    assert item is not None
    assert 2 * 86_400 - 60 < float(item["expiresAt"]["N"]) - time.time() <= 2 * 86_400  # --retention-days 2


def test_a_final_request_is_refused_and_left_unchanged(cli: Cli, api: str, service_env: ServiceEnv) -> None:
    request_id = new_id()
    assert (
        cli("update", "--api", api, "--template", "DEMO-VALID", "--append", "1", "--request-id", request_id).code == 0
    )
    before = service_env.ledger_item(request_id)

    result = cli("reconcile", request_id, "--not-applied", "--table", service_env.table_name)

    assert result.code == 6
    assert "is SUCCEEDED (final)" in result.err
    assert service_env.ledger_item(request_id) == before


def test_an_unknown_request_id_exits_9(cli: Cli, service_env: ServiceEnv) -> None:
    result = cli("reconcile", new_id(), "--applied", "--table", service_env.table_name)
    assert result.code == 9


def test_sending_waits_for_its_lease_then_can_be_reconciled(cli: Cli, service_env: ServiceEnv) -> None:
    ledger = Ledger(service_env.dynamodb(), service_env.table_name)
    live, abandoned = new_id(), new_id()
    for request_id, lease in ((live, 600.0), (abandoned, -1.0)):
        update = BudgetUpdate(request_id, DEMO_MERCHANT_ACCOUNT_ID, "DEMO-VALID", UpdateType.APPEND_BUDGET, 2)
        assert ledger.claim(update, "arn:aws:iam::000000000000:user/app", "api", lease_seconds=lease).token

    held = cli("reconcile", live, "--applied")
    settled = cli("reconcile", abandoned, "--applied", "--json")

    assert held.code == 5
    assert "SENDING" in held.err
    assert settled.code == 0
    assert settled.json()["record"]["state"] == "SUCCEEDED"


def test_without_a_table_it_says_how_to_name_one(cli: Cli) -> None:
    result = cli("reconcile", "r-1", "--applied")
    assert result.code == 2
    assert "LEDGER_TABLE_NAME" in result.err
