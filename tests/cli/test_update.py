"""ipass-budget update and status against the local stack: every exit code the stack can produce."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget.keys import public_key_pem
from ipass_budget.ledger import Ledger
from ipass_budget.models import BudgetUpdate, UpdateType
from ipass_sandbox.config import DEMO_CLIENT_ID, DEMO_MERCHANT_ACCOUNT_ID
from tests.cli.support import CliResult
from tests.service.support import ServiceEnv, new_id

Cli = Callable[..., CliResult]


def update(cli: Cli, api: str, *extra: str, template: str = "DEMO-VALID", number: str = "100") -> CliResult:
    change = ("--append", number) if "--subtract" not in extra else ()
    return cli("update", "--api", api, "--template", template, *change, *extra)


def test_append_succeeds_and_the_generated_request_id_is_printed_first(
    cli: Cli, api: str, service_env: ServiceEnv
) -> None:
    before = service_env.budget()

    result = update(cli, api, number="100")

    assert result.code == 0
    assert service_env.budget() == before + 100
    request_id = result.printed_request_id
    assert request_id.startswith("cli-")
    assert "reuse it with --request-id" in result.err
    assert result.out.startswith("SUCCEEDED\n")
    assert f"requestId  {request_id}" in result.out
    assert "S / SUCCESS" in result.out
    assert service_env.ledger_item(request_id) is not None


def test_subtract_with_json_output(cli: Cli, api: str, service_env: ServiceEnv) -> None:
    before = service_env.budget()

    result = update(cli, api, "--subtract", "50", "--json")

    assert result.code == 0
    document = result.json()
    assert (document["httpStatus"], document["exitCode"], document["origin"]) == (200, 0, "api")
    assert document["body"]["outcome"] == "SUCCEEDED"
    assert document["body"]["requestId"] == result.printed_request_id
    assert service_env.budget() == before - 50


def test_the_printed_request_id_retries_without_applying_twice(cli: Cli, api: str, service_env: ServiceEnv) -> None:
    before = service_env.budget()
    first = update(cli, api, number="7")
    request_id = first.printed_request_id

    again = update(cli, api, "--request-id", request_id, "--json", number="7")

    assert again.code == 0
    assert again.json()["body"]["replayed"] is True
    assert service_env.budget() == before + 7
    assert service_env.arrivals(request_id) == 1
    human = update(cli, api, "--request-id", request_id, number="7")
    assert human.out.startswith("SUCCEEDED (replayed)")
    assert "replayed   true" in human.out
    assert "(generated" not in human.err


def test_a_final_failure_exits_3(cli: Cli, api: str, service_env: ServiceEnv) -> None:
    result = update(cli, api, template="DEMO-CLOSED", number="1")

    assert result.code == 3
    assert result.out.startswith("FAILED (final): PASS_TEMPLATE_STATUS_ILLEGAL\n")
    assert "AlipayHK   F / PASS_TEMPLATE_STATUS_ILLEGAL / " in result.out
    assert "new requestId" in result.out


def test_rejected_exits_4_and_the_same_request_id_works_once_fixed(
    cli: Cli,
    api: str,
    service_env: ServiceEnv,
    spare_private_key: rsa.RSAPrivateKey,
    client_private_key: rsa.RSAPrivateKey,
) -> None:
    before = service_env.budget()
    service_env.admin.register_key(DEMO_CLIENT_ID, "1", public_key_pem(spare_private_key))
    request_id = new_id()

    rejected = update(cli, api, "--request-id", request_id, number="9")

    assert rejected.code == 4
    assert "INVALID_SIGNATURE" in rejected.out
    assert f"--request-id {request_id}" in rejected.out  # the command to retry with
    assert service_env.budget() == before

    service_env.admin.register_key(DEMO_CLIENT_ID, "1", public_key_pem(client_private_key))
    assert update(cli, api, "--request-id", request_id, number="9").code == 0
    assert service_env.budget() == before + 9


def test_unknown_exits_5_and_says_how_to_retry(cli: Cli, api: str, service_env: ServiceEnv) -> None:
    request_id = new_id()
    before = service_env.budget()
    service_env.admin.add_fault(request_id, "U_BEFORE_APPLY")  # every attempt

    unknown = update(cli, api, "--request-id", request_id, number="4")

    assert unknown.code == 5
    assert unknown.out.startswith("UNKNOWN: the outcome is not known yet (AlipayHK answered: UNKNOWN_EXCEPTION)\n")
    assert f"ipass-budget update --api {api} --template DEMO-VALID --append 4 --request-id {request_id}" in unknown.out
    assert "in 5 s" in unknown.out  # Retry-After

    service_env.admin.clear_faults()
    assert update(cli, api, "--request-id", request_id, number="4").code == 0
    assert service_env.budget() == before + 4


def test_a_request_in_progress_exits_5(cli: Cli, api: str, service_env: ServiceEnv) -> None:
    request_id = new_id()
    ledger = Ledger(service_env.dynamodb(), service_env.table_name)
    claimed = BudgetUpdate(request_id, DEMO_MERCHANT_ACCOUNT_ID, "DEMO-VALID", UpdateType.APPEND_BUDGET, 5)
    assert ledger.claim(claimed, "arn:aws:iam::000000000000:user/other", "api", lease_seconds=60).token

    result = update(cli, api, "--request-id", request_id, "--json", number="5")

    assert result.code == 5
    assert result.json()["body"]["error"]["code"] == "REQUEST_IN_PROGRESS"
    assert f"--request-id {request_id}" in result.err


def test_dependency_unavailable_exits_5(
    cli: Cli, api: str, service_env: ServiceEnv, handler: Any, monkeypatch: pytest.MonkeyPatch, unused_port: int
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{unused_port}")
    handler.budget_service.cache_clear()

    result = update(cli, api, number="1")

    assert result.code == 5
    assert result.out.startswith("UNAVAILABLE")
    assert service_env.admin.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (("--append", "0"), "number"),
        (("--append", "1000000"), "number"),
        (("--append", "1_000"), "number"),
        (("--subtract", "-3"), "number"),
        (("--append", "1", "--request-id", "has space"), "requestId"),
        (("--append", "1", "--merchant-account-id", "x" * 65), "merchantAccountId"),
    ],
)
def test_invalid_input_is_refused_locally_before_any_call(
    cli: Cli, api: str, service_env: ServiceEnv, extra: tuple[str, ...], field: str
) -> None:
    result = cli("update", "--api", api, "--template", "DEMO-VALID", *extra, "--json")

    assert result.code == 6
    document = result.json()
    assert (document["httpStatus"], document["origin"]) == (None, "cli")
    assert document["body"]["error"]["code"] == "INVALID_REQUEST"
    assert [d["field"] for d in document["body"]["error"]["details"]] == [field]
    assert not re.search(r"^requestId: ", result.err, re.MULTILINE)  # exits before announcing (or making) a call
    assert service_env.admin.stats()["requests"] == 0


def test_a_template_code_over_32_characters_is_refused_locally(cli: Cli, unused_port: int) -> None:
    result = cli("update", "--api", f"http://127.0.0.1:{unused_port}", "--template", "T" * 33, "--append", "1")
    assert result.code == 6
    assert "templateCode" in result.err


def test_a_reused_request_id_with_another_payload_exits_6(cli: Cli, api: str, service_env: ServiceEnv) -> None:
    request_id = new_id()
    assert update(cli, api, "--request-id", request_id, number="2").code == 0

    result = update(cli, api, "--request-id", request_id, number="3")

    assert result.code == 6
    assert "REQUEST_ID_REUSED" in result.out
    assert f"ipass-budget status {request_id}" in result.out


def test_an_unreachable_api_exits_7_and_nothing_was_sent(cli: Cli, unused_port: int) -> None:
    result = cli(
        "update", "--api", f"http://127.0.0.1:{unused_port}", "--template", "T", "--append", "1", "--request-id", "r-1"
    )

    assert result.code == 7
    assert "could not connect" in result.err
    assert "nothing was sent" in result.err
    assert "--request-id r-1" in result.err


def test_a_broken_secret_exits_8_without_key_material(cli: Cli, api: str, service_env: ServiceEnv) -> None:
    service_env.put_secret({**service_env.secret, "alipayPublicKey": ""})

    result = update(cli, api, number="1")

    assert result.code == 8
    assert result.out.startswith("MISCONFIGURED")
    assert "alipayPublicKey" in result.out
    assert "PRIVATE" not in result.out + result.err
    assert service_env.admin.stats()["requests"] == 0


def test_status_shows_the_record_and_exits_0(cli: Cli, api: str, service_env: ServiceEnv) -> None:
    request_id = "cli/odd?id#50%"  # every reserved character must survive the URL path
    assert update(cli, api, "--request-id", request_id, number="6").code == 0

    human = cli("status", request_id, "--api", api)
    as_json = cli("status", request_id, "--api", api, "--json")

    assert human.code == 0
    assert f"requestId  {request_id}" in human.out
    assert "state      SUCCEEDED" in human.out
    assert "APPEND_BUDGET 6" in human.out
    assert as_json.code == 0
    body = as_json.json()["body"]
    assert (body["requestId"], body["state"], body["number"]) == (request_id, "SUCCEEDED", 6)


def test_status_of_an_unknown_request_exits_9(cli: Cli, api: str, service_env: ServiceEnv) -> None:
    result = cli("status", new_id(), "--api", api, "--json")
    assert result.code == 9
    assert json.loads(result.out)["body"]["error"]["code"] == "NOT_FOUND"
    assert cli("status", new_id(), "--api", api).err.startswith("error: not found")


def test_status_of_an_invalid_request_id_exits_6(cli: Cli, unused_port: int) -> None:
    result = cli("status", "has space", "--api", f"http://127.0.0.1:{unused_port}")
    assert result.code == 6


def test_a_bad_timeout_is_a_usage_error(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("0", "-1", "nan", "soon"):
        with pytest.raises(SystemExit) as stopped:
            cli("status", "r-1", "--api", "http://127.0.0.1:1", "--timeout", value)
        assert stopped.value.code == 2
        assert "--timeout" in capsys.readouterr().err
