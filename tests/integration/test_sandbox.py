"""The sandbox over real HTTP on 127.0.0.1: gateway checks, body rules, idempotency, budget rules,
admin endpoints, configuration files and the console script."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget import UPDATE_BUDGET_PATH
from ipass_budget.client import AlipayClient, RetryPolicy
from ipass_budget.credentials import Credentials, parse_credentials
from ipass_budget.keys import load_public_key, private_key_pem, public_key_base64, public_key_pem
from ipass_budget.models import BudgetUpdate, UpdateType
from ipass_budget.outcome import AttemptResult, Disposition
from ipass_budget.response import evaluate_response
from ipass_budget.signing import sign_request
from ipass_sandbox.admin_client import SandboxAdminClient
from ipass_sandbox.config import (
    CONFIG_FILE_NAME,
    DEMO_CLIENT_ID,
    DEMO_MERCHANT_ACCOUNT_ID,
    SECRET_FILE_NAME,
    SandboxConfig,
    SandboxConfigError,
    demo_config,
    load_config,
    parse_config,
    save_config,
)
from ipass_sandbox.faults import FaultKind
from ipass_sandbox.server import SandboxServer

pytestmark = pytest.mark.integration

MERCHANT = DEMO_MERCHANT_ACCOUNT_ID
Headers = dict[str, str]


# --- helpers -------------------------------------------------------------------------------------


def update_body(
    request_id: str | None,
    template: str = "DEMO-VALID",
    update_type: str = "APPEND_BUDGET",
    number: Any = 10,
    **fields: Any,
) -> bytes:
    data: dict[str, Any] = {
        "requestId": request_id,
        "merchantAccountId": MERCHANT,
        "templateCode": template,
        "updateType": update_type,
        "number": number,
    }
    data.update(fields)
    return json.dumps({k: v for k, v in data.items() if v is not None}, separators=(",", ":")).encode()


def signed_headers(
    key: rsa.RSAPrivateKey, body: bytes, client_id: str = DEMO_CLIENT_ID, key_version: str = "1"
) -> Headers:
    return sign_request(key, client_id, key_version, UPDATE_BUDGET_PATH, body)


def post(sandbox: SandboxServer, body: bytes, headers: Headers) -> requests.Response:
    return requests.post(sandbox.url + UPDATE_BUDGET_PATH, data=body, headers=headers, timeout=5)


def result(response: requests.Response) -> tuple[str, str, str]:
    assert response.status_code == 200, response.text
    info = response.json()["resultInfo"]
    return info["resultStatus"], info["resultCode"], info["resultMsg"]


def checked(
    response: requests.Response, sandbox_key: rsa.RSAPrivateKey, client_id: str = DEMO_CLIENT_ID
) -> AttemptResult:
    """The answer as the domain client reads it; it only verifies if the sandbox signed it properly."""
    return evaluate_response(
        http_status=response.status_code,
        headers=response.headers,
        body=response.content,
        path=UPDATE_BUDGET_PATH,
        client_id=client_id,
        alipay_public_key=sandbox_key.public_key(),
    )


def budget(admin: SandboxAdminClient, template: str = "DEMO-VALID") -> int:
    view = admin.template(template)
    assert view is not None
    return int(view["budget"])


# --- the happy path and the answer's signature ---------------------------------------------------


def test_update_applies_and_answer_is_signed(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    client_private_key: rsa.RSAPrivateKey,
    sandbox_private_key: rsa.RSAPrivateKey,
) -> None:
    body = update_body("ok-1", number=25)
    response = post(sandbox, body, signed_headers(client_private_key, body))

    assert result(response) == ("S", "SUCCESS", "Success")
    assert response.headers["Client-Id"] == DEMO_CLIENT_ID
    assert response.headers["Tracer-Id"]
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert response.headers["Signature"].startswith("algorithm=RSA256,keyVersion=1,signature=")
    attempt = checked(response, sandbox_private_key)
    assert (attempt.disposition, attempt.verified) == (Disposition.SUCCEEDED, True)
    assert budget(sandbox_admin) == 1025


def test_answers_carry_fresh_tracer_ids(sandbox: SandboxServer, client_private_key: rsa.RSAPrivateKey) -> None:
    tracer_ids = set()
    for number in (1, 2):
        body = update_body(f"tracer-{number}")
        tracer_ids.add(post(sandbox, body, signed_headers(client_private_key, body)).headers["Tracer-Id"])
    assert len(tracer_ids) == 2


# --- gateway checks ------------------------------------------------------------------------------


def test_missing_client_id_is_invalid_client_and_unsigned(
    sandbox: SandboxServer, client_private_key: rsa.RSAPrivateKey
) -> None:
    body = update_body("no-client")
    headers = signed_headers(client_private_key, body)
    del headers["Client-Id"]
    response = post(sandbox, body, headers)
    assert result(response)[:2] == ("F", "INVALID_CLIENT")
    assert "Signature" not in response.headers  # nothing to sign over without a Client-Id


def test_unknown_client_id_is_invalid_client_signed_for_that_client(
    sandbox: SandboxServer, client_private_key: rsa.RSAPrivateKey, sandbox_private_key: rsa.RSAPrivateKey
) -> None:
    body = update_body("stranger")
    response = post(sandbox, body, signed_headers(client_private_key, body, client_id="STRANGER"))
    assert result(response)[:2] == ("F", "INVALID_CLIENT")
    attempt = checked(response, sandbox_private_key, client_id="STRANGER")
    assert (attempt.disposition, attempt.verified) == (Disposition.REJECTED, True)


Mutation = Callable[[Headers, bytes, rsa.RSAPrivateKey], tuple[Headers, bytes]]


def _set(name: str, value: str | None) -> Mutation:
    def mutate(headers: Headers, body: bytes, spare: rsa.RSAPrivateKey) -> tuple[Headers, bytes]:
        changed = dict(headers)
        if value is None:
            changed.pop(name, None)
        else:
            changed[name] = value
        return changed, body

    return mutate


def _with_signature_part(part: str, value: str) -> Mutation:
    def mutate(headers: Headers, body: bytes, spare: rsa.RSAPrivateKey) -> tuple[Headers, bytes]:
        changed = dict(headers)
        changed["Signature"] = re.sub(rf"{part}=[^,]*", f"{part}={value}", headers["Signature"])
        return changed, body

    return mutate


def _tampered_body(headers: Headers, body: bytes, spare: rsa.RSAPrivateKey) -> tuple[Headers, bytes]:
    return headers, body.replace(b'"number":10', b'"number":11')


def _other_time(headers: Headers, body: bytes, spare: rsa.RSAPrivateKey) -> tuple[Headers, bytes]:
    return {**headers, "Request-Time": "2024-05-22T06:42:21+05:30"}, body


def _signed_by_spare_key(headers: Headers, body: bytes, spare: rsa.RSAPrivateKey) -> tuple[Headers, bytes]:
    return signed_headers(spare, body), body


GATEWAY_REJECTIONS = [
    pytest.param(_set("Signature", None), "INVALID_SIGNATURE", id="signature-missing"),
    pytest.param(_set("Signature", "garbage"), "INVALID_SIGNATURE", id="signature-unparsable"),
    pytest.param(_with_signature_part("signature", "%%%not-base64"), "INVALID_SIGNATURE", id="signature-not-base64"),
    pytest.param(_with_signature_part("algorithm", "ECC224"), "INVALID_SIGNATURE", id="algorithm-ecc224"),
    pytest.param(_with_signature_part("keyVersion", "9"), "KEY_NOT_FOUND", id="key-version-unknown"),
    pytest.param(_set("Request-Time", None), "PARAM_ILLEGAL", id="request-time-missing"),
    pytest.param(_set("Request-Time", "2024-05-22T06:42:21"), "PARAM_ILLEGAL", id="request-time-without-zone"),
    pytest.param(_set("Request-Time", "yesterday"), "PARAM_ILLEGAL", id="request-time-garbage"),
    pytest.param(_set("Content-Type", "text/plain"), "MEDIA_TYPE_NOT_ACCEPTABLE", id="content-type-text"),
    pytest.param(
        _set("Content-Type", "application/json; charset=ISO-8859-1"), "MEDIA_TYPE_NOT_ACCEPTABLE", id="charset-latin1"
    ),
    pytest.param(_set("Content-Type", None), "MEDIA_TYPE_NOT_ACCEPTABLE", id="content-type-missing"),
    pytest.param(_tampered_body, "INVALID_SIGNATURE", id="body-changed-after-signing"),
    pytest.param(_other_time, "INVALID_SIGNATURE", id="request-time-not-the-signed-one"),
    pytest.param(_signed_by_spare_key, "INVALID_SIGNATURE", id="signed-by-unregistered-key"),
]


@pytest.mark.parametrize(("mutate", "code"), GATEWAY_REJECTIONS)
def test_gateway_rejections_are_signed_and_not_remembered(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    client_private_key: rsa.RSAPrivateKey,
    sandbox_private_key: rsa.RSAPrivateKey,
    spare_private_key: rsa.RSAPrivateKey,
    mutate: Mutation,
    code: str,
) -> None:
    body = update_body("rejected-1")
    headers, sent_body = mutate(signed_headers(client_private_key, body), body, spare_private_key)
    response = post(sandbox, sent_body, headers)

    status, answered_code, message = result(response)
    assert (status, answered_code) == ("F", code)
    assert message
    attempt = checked(response, sandbox_private_key)
    assert attempt.verified
    assert attempt.disposition in (Disposition.REJECTED, Disposition.FAILED)
    assert budget(sandbox_admin) == 1000
    # Not remembered: the correct request with the same requestId is applied afterwards.
    assert result(post(sandbox, body, signed_headers(client_private_key, body)))[:2] == ("S", "SUCCESS")
    assert budget(sandbox_admin) == 1010


@pytest.mark.parametrize(
    ("mutations", "code"),
    [
        pytest.param([_set("Client-Id", "STRANGER"), _set("Signature", None)], "INVALID_CLIENT", id="client-first"),
        pytest.param([_set("Signature", "garbage"), _with_signature_part("keyVersion", "9")], "INVALID_SIGNATURE"),
        pytest.param([_with_signature_part("algorithm", "ECC224"), _set("Request-Time", None)], "INVALID_SIGNATURE"),
        pytest.param([_with_signature_part("keyVersion", "9"), _set("Request-Time", None)], "KEY_NOT_FOUND"),
        pytest.param([_set("Request-Time", "nope"), _set("Content-Type", "text/plain")], "PARAM_ILLEGAL"),
        pytest.param([_set("Content-Type", "text/plain"), _tampered_body], "MEDIA_TYPE_NOT_ACCEPTABLE"),
    ],
)
def test_gateway_checks_run_in_documented_order(
    sandbox: SandboxServer,
    client_private_key: rsa.RSAPrivateKey,
    spare_private_key: rsa.RSAPrivateKey,
    mutations: list[Mutation],
    code: str,
) -> None:
    body = update_body("order-1")
    headers = signed_headers(client_private_key, body)
    for mutate in mutations:
        headers, body = mutate(headers, body, spare_private_key)
    assert result(post(sandbox, body, headers))[:2] == ("F", code)


def test_lowercase_percent_escapes_and_spaces_in_signature_header_are_accepted(
    sandbox: SandboxServer, sandbox_admin: SandboxAdminClient, client_private_key: rsa.RSAPrivateKey
) -> None:
    body = update_body("lowercase-1")
    headers = signed_headers(client_private_key, body)
    original = headers["Signature"]
    # A 2048-bit signature is 256 bytes, so its base64 always ends in "==", sent as %3D%3D.
    lowered = re.sub(r"%[0-9A-F]{2}", lambda match: match.group(0).lower(), original).replace(",", ", ")
    assert lowered != original
    assert "%3d" in lowered
    response = post(sandbox, body, {**headers, "Signature": lowered})
    assert result(response)[:2] == ("S", "SUCCESS")
    assert budget(sandbox_admin) == 1010


def test_missing_key_version_means_latest_registered_key(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    client_private_key: rsa.RSAPrivateKey,
    spare_private_key: rsa.RSAPrivateKey,
) -> None:
    sandbox_admin.register_key(DEMO_CLIENT_ID, "2", public_key_pem(spare_private_key))

    def without_key_version(key: rsa.RSAPrivateKey, body: bytes) -> Headers:
        headers = signed_headers(key, body)
        headers["Signature"] = headers["Signature"].replace(",keyVersion=1", "")
        assert "keyVersion" not in headers["Signature"]
        return headers

    body = update_body("latest-1")
    assert result(post(sandbox, body, without_key_version(client_private_key, body)))[1] == "INVALID_SIGNATURE"
    assert result(post(sandbox, body, without_key_version(spare_private_key, body)))[1] == "SUCCESS"
    body = update_body("latest-2")
    assert result(post(sandbox, body, signed_headers(client_private_key, body, key_version="1")))[1] == "SUCCESS"


def test_key_rotation_through_admin_endpoints(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    credentials: Credentials,
    spare_private_key: rsa.RSAPrivateKey,
) -> None:
    client = AlipayClient(sandbox.url, RetryPolicy(max_attempts=1))
    rotated = Credentials(
        credentials.client_id,
        credentials.merchant_account_id,
        "2",
        spare_private_key,
        credentials.alipay_public_key,
    )

    def send(creds: Credentials, request_id: str) -> str | None:
        body = BudgetUpdate(request_id, MERCHANT, "DEMO-VALID", UpdateType.APPEND_BUDGET, 1).to_body()
        info = client.send(creds, body, time.monotonic() + 10).final.result_info
        return info.result_code if info else None

    assert send(rotated, "rot-1") == "KEY_NOT_FOUND"
    # Bare base64 SubjectPublicKeyInfo is accepted as well as PEM.
    sandbox_admin.register_key(DEMO_CLIENT_ID, "2", public_key_base64(spare_private_key))
    assert send(rotated, "rot-1") == "SUCCESS"
    sandbox_admin.remove_key(DEMO_CLIENT_ID, "1")
    assert send(credentials, "rot-2") == "KEY_NOT_FOUND"
    assert sandbox_admin.call("DELETE", f"clients/{DEMO_CLIENT_ID}/keys/1").status_code == 404
    bad = sandbox_admin.call("PUT", f"clients/{DEMO_CLIENT_ID}/keys/3", {"publicKey": "not a key"})
    assert bad.status_code == 400
    assert "publicKey" in bad.json()["error"]
    assert sandbox_admin.call("PUT", f"clients/{DEMO_CLIENT_ID}/keys/x", {"publicKey": "k"}).status_code == 400
    client.close()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_on_api_path_are_not_supported(
    sandbox: SandboxServer, sandbox_private_key: rsa.RSAPrivateKey, method: str
) -> None:
    response = requests.request(
        method, sandbox.url + UPDATE_BUDGET_PATH, headers={"Client-Id": DEMO_CLIENT_ID}, timeout=5
    )
    assert result(response)[:2] == ("F", "METHOD_NOT_SUPPORTED")
    assert checked(response, sandbox_private_key).verified


def test_unknown_path_is_404_json(sandbox: SandboxServer) -> None:
    response = requests.post(sandbox.url + "/api/open/alipay/v1/ipass/nothing", data=b"{}", timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert "no such path" in response.json()["error"]


def test_oversized_body_is_refused(sandbox: SandboxServer) -> None:
    response = requests.post(sandbox.url + UPDATE_BUDGET_PATH, data=b"x" * 70_000, timeout=5)
    assert response.status_code == 413


# --- body rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(b"not json", "body", id="not-json"),
        pytest.param(b"[1,2]", "body", id="array"),
        pytest.param(b"\xff\xfe", "body", id="not-utf8"),
        pytest.param(update_body(None), "requestId", id="request-id-missing"),
        pytest.param(update_body("x" * 129), "requestId", id="request-id-too-long"),
        pytest.param(update_body(""), "requestId", id="request-id-empty"),
        pytest.param(update_body("b1", merchantAccountId=None), "merchantAccountId", id="merchant-missing"),
        pytest.param(update_body("b1", merchantAccountId="m" * 65), "merchantAccountId", id="merchant-too-long"),
        pytest.param(update_body("b1", template="T" * 33), "templateCode", id="template-too-long"),
        pytest.param(update_body("b1", update_type="OVERRIDE_BUDGET"), "updateType", id="update-type-override"),
        pytest.param(update_body("b1", number=0), "number", id="number-zero"),
        pytest.param(update_body("b1", number=1_000_000), "number", id="number-too-big"),
        pytest.param(update_body("b1", number=True), "number", id="number-bool"),
        pytest.param(update_body("b1", number=5.0), "number", id="number-float"),
        pytest.param(update_body("b1", number="5"), "number", id="number-string"),
        pytest.param(update_body("b1", number=None), "number", id="number-missing"),
    ],
)
def test_malformed_body_is_param_illegal_naming_the_field(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    client_private_key: rsa.RSAPrivateKey,
    body: bytes,
    field: str,
) -> None:
    status, code, message = result(post(sandbox, body, signed_headers(client_private_key, body)))
    assert (status, code) == ("F", "PARAM_ILLEGAL")
    assert field in message
    assert budget(sandbox_admin) == 1000
    assert sandbox_admin.request_record("b1")["answer"] is None  # validation failures are not remembered


def test_deprecated_merchant_id_is_read_when_merchant_account_id_is_absent(
    sandbox: SandboxServer, sandbox_admin: SandboxAdminClient, client_private_key: rsa.RSAPrivateKey
) -> None:
    body = update_body("legacy-1", merchantAccountId=None, merchantId=MERCHANT)
    assert result(post(sandbox, body, signed_headers(client_private_key, body)))[1] == "SUCCESS"
    # merchantAccountId wins when both are present.
    body = update_body("legacy-2", merchantId="2160999999999999")
    assert result(post(sandbox, body, signed_headers(client_private_key, body)))[1] == "SUCCESS"
    assert budget(sandbox_admin) == 1020


def test_unknown_extra_fields_are_ignored(
    sandbox: SandboxServer, sandbox_admin: SandboxAdminClient, client_private_key: rsa.RSAPrivateKey
) -> None:
    body = update_body("extra-1", comment="hello", nested={"a": 1})
    assert result(post(sandbox, body, signed_headers(client_private_key, body)))[1] == "SUCCESS"
    assert budget(sandbox_admin) == 1010


# --- idempotency ---------------------------------------------------------------------------------


def test_repeat_returns_first_answer_and_changes_nothing(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    client_private_key: rsa.RSAPrivateKey,
    sandbox_private_key: rsa.RSAPrivateKey,
) -> None:
    body = update_body("repeat-1", number=40)
    first = post(sandbox, body, signed_headers(client_private_key, body))
    # Same business payload, different JSON spelling: still the same request.
    respelled = json.dumps(json.loads(body), indent=1).encode()
    second = post(sandbox, respelled, signed_headers(client_private_key, respelled))

    assert result(first)[1] == "SUCCESS"
    assert second.content == first.content
    assert second.headers["Tracer-Id"] != first.headers["Tracer-Id"]
    assert checked(second, sandbox_private_key).disposition is Disposition.SUCCEEDED  # re-signed
    assert budget(sandbox_admin) == 1040
    record = sandbox_admin.request_record("repeat-1")
    assert record == {"requestId": "repeat-1", "arrivals": 2, "applied": True, "answer": json.loads(first.content)}


def test_business_failures_are_remembered_too(
    sandbox: SandboxServer, sandbox_admin: SandboxAdminClient, client_private_key: rsa.RSAPrivateKey
) -> None:
    body = update_body("later-1", template="NEW-TEMPLATE")
    assert result(post(sandbox, body, signed_headers(client_private_key, body)))[1] == "PASS_TEMPLATE_HAS_NOT_EXIT"
    sandbox_admin.put_template("NEW-TEMPLATE", MERCHANT, "valid", 100, 0)
    # The first answer stands for this requestId, even though the template exists now.
    assert result(post(sandbox, body, signed_headers(client_private_key, body)))[1] == "PASS_TEMPLATE_HAS_NOT_EXIT"
    record = sandbox_admin.request_record("later-1")
    assert (record["applied"], record["answer"]["resultInfo"]["resultCode"]) == (False, "PASS_TEMPLATE_HAS_NOT_EXIT")
    body = update_body("later-2", template="NEW-TEMPLATE")
    assert result(post(sandbox, body, signed_headers(client_private_key, body)))[1] == "SUCCESS"
    assert budget(sandbox_admin, "NEW-TEMPLATE") == 110


@pytest.mark.parametrize(
    "changed",
    [
        {"number": 11},
        {"update_type": "SUBTRACT_BUDGET"},
        {"template": "DEMO-FROZEN"},
        {"merchantAccountId": "2160999999999999"},
    ],
)
def test_different_payload_under_used_request_id_is_refused(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    client_private_key: rsa.RSAPrivateKey,
    changed: dict[str, Any],
) -> None:
    body = update_body("reuse-1")
    first = post(sandbox, body, signed_headers(client_private_key, body))
    other = update_body("reuse-1", **changed)
    status, code, message = result(post(sandbox, other, signed_headers(client_private_key, other)))
    assert (status, code) == ("F", "REPEAT_REQ_INCONSISTENT")
    assert "reuse-1" in message
    assert (budget(sandbox_admin), budget(sandbox_admin, "DEMO-FROZEN")) == (1010, 1000)
    # The refusal is not remembered: the original payload still gets the original answer.
    assert post(sandbox, body, signed_headers(client_private_key, body)).content == first.content
    assert sandbox_admin.request_record("reuse-1")["answer"] == json.loads(first.content)


def test_request_ids_are_remembered_per_client_id(
    sandbox: SandboxServer, sandbox_admin: SandboxAdminClient, client_private_key: rsa.RSAPrivateKey
) -> None:
    sandbox_admin.register_key("OTHERCLIENT", "1", public_key_pem(client_private_key))
    body = update_body("shared-1", number=5)
    assert result(post(sandbox, body, signed_headers(client_private_key, body)))[1] == "SUCCESS"
    other = update_body("shared-1", number=7)
    assert (
        result(post(sandbox, other, signed_headers(client_private_key, other, client_id="OTHERCLIENT")))[1] == "SUCCESS"
    )
    assert budget(sandbox_admin) == 1012
    assert sandbox_admin.request_record("shared-1")["arrivals"] == 2


# --- budget rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "merchant", "code"),
    [
        ("DEMO-VALID", MERCHANT, "SUCCESS"),
        ("DEMO-FROZEN", MERCHANT, "SUCCESS"),
        ("DEMO-PAUSED", MERCHANT, "SUCCESS"),
        ("DEMO-CLOSED", MERCHANT, "PASS_TEMPLATE_STATUS_ILLEGAL"),
        ("DEMO-EXPIRED", MERCHANT, "PASS_TEMPLATE_STATUS_ILLEGAL"),
        ("NO-SUCH-TEMPLATE", MERCHANT, "PASS_TEMPLATE_HAS_NOT_EXIT"),
        ("DEMO-VALID", "2160999999999999", "PASS_TEMPLATE_HAS_NOT_EXIT"),
    ],
)
def test_template_status_and_ownership(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    client_private_key: rsa.RSAPrivateKey,
    template: str,
    merchant: str,
    code: str,
) -> None:
    body = update_body("status-1", template=template, merchantAccountId=merchant)
    status, answered, _ = result(post(sandbox, body, signed_headers(client_private_key, body)))
    assert (status, answered) == ("S" if code == "SUCCESS" else "F", code)
    view = sandbox_admin.template(template)
    if view is not None:
        expected = 1010 if code == "SUCCESS" and merchant == MERCHANT else 1000
        assert view["budget"] == expected


@pytest.mark.parametrize(
    ("template", "update_type", "number", "code", "final", "bound"),
    [
        ("DEMO-FULL", "APPEND_BUDGET", 10, "SUCCESS", 1_000_000, ""),
        ("DEMO-FULL", "APPEND_BUDGET", 11, "PARAM_ILLEGAL", 999_990, "1000000"),
        ("DEMO-VALID", "SUBTRACT_BUDGET", 900, "SUCCESS", 100, ""),
        ("DEMO-VALID", "SUBTRACT_BUDGET", 901, "PARAM_ILLEGAL", 1000, "issued"),
        ("DEMO-VALID", "APPEND_BUDGET", 999_999, "PARAM_ILLEGAL", 1000, "maximum"),
    ],
)
def test_final_stock_stays_within_issued_and_one_million(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    client_private_key: rsa.RSAPrivateKey,
    template: str,
    update_type: str,
    number: int,
    code: str,
    final: int,
    bound: str,
) -> None:
    body = update_body("bound-1", template=template, update_type=update_type, number=number)
    _, answered, message = result(post(sandbox, body, signed_headers(client_private_key, body)))
    assert answered == code
    assert bound in message
    assert budget(sandbox_admin, template) == final


# --- concurrency ---------------------------------------------------------------------------------


def _send_concurrently(
    sandbox: SandboxServer, credentials: Credentials, bodies: list[bytes]
) -> list[tuple[Disposition, str | None]]:
    start = threading.Barrier(len(bodies))

    def send(body: bytes) -> tuple[Disposition, str | None]:
        client = AlipayClient(sandbox.url, RetryPolicy(max_attempts=1))
        try:
            start.wait(timeout=10)
            final = client.send(credentials, body, time.monotonic() + 10).final
            return final.disposition, final.result_info.result_code if final.result_info else None
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(send, bodies))


def test_concurrent_distinct_updates_add_up_exactly(
    sandbox: SandboxServer, sandbox_admin: SandboxAdminClient, credentials: Credentials
) -> None:
    bodies = [
        BudgetUpdate(f"many-{i}", MERCHANT, "DEMO-VALID", UpdateType.APPEND_BUDGET, i).to_body() for i in range(1, 21)
    ]
    outcomes = _send_concurrently(sandbox, credentials, bodies)
    assert outcomes == [(Disposition.SUCCEEDED, "SUCCESS")] * 20
    assert budget(sandbox_admin) == 1000 + sum(range(1, 21))


def test_concurrent_repeats_of_one_request_id_apply_once(
    sandbox: SandboxServer, sandbox_admin: SandboxAdminClient, credentials: Credentials
) -> None:
    body = BudgetUpdate("same-1", MERCHANT, "DEMO-VALID", UpdateType.APPEND_BUDGET, 7).to_body()
    outcomes = _send_concurrently(sandbox, credentials, [body] * 10)
    assert outcomes == [(Disposition.SUCCEEDED, "SUCCESS")] * 10
    assert budget(sandbox_admin) == 1007
    assert sandbox_admin.request_record("same-1")["arrivals"] == 10


# --- admin endpoints -----------------------------------------------------------------------------


def test_template_endpoint_answers_exactly_the_contract_fields(sandbox_admin: SandboxAdminClient) -> None:
    assert sandbox_admin.template("DEMO-FROZEN") == {
        "templateCode": "DEMO-FROZEN",
        "status": "frozen",
        "budget": 1000,
        "issued": 100,
    }
    missing = sandbox_admin.call("GET", "templates/NOPE")
    assert missing.status_code == 404
    assert "NOPE" in missing.json()["error"]


def test_template_put_creates_then_replaces(sandbox_admin: SandboxAdminClient) -> None:
    body = {"merchantAccountId": MERCHANT, "status": "paused", "budget": 50, "issued": 5}
    created = sandbox_admin.call("PUT", "templates/T%2F1", body)
    assert created.status_code == 201
    assert created.json() == {"templateCode": "T/1", **body}
    replaced = sandbox_admin.call("PUT", "templates/T%2F1", {**body, "status": "closed", "templateCode": "T/1"})
    assert replaced.status_code == 200
    assert sandbox_admin.template("T/1") == {"templateCode": "T/1", "status": "closed", "budget": 50, "issued": 5}
    listed = sandbox_admin.call("GET", "templates").json()["templates"]
    assert {
        "templateCode": "T/1",
        "merchantAccountId": MERCHANT,
        "status": "closed",
        "budget": 50,
        "issued": 5,
    } in listed


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"status": "open"}, "status"),
        ({"budget": 1_000_001}, "budget"),
        ({"budget": -1}, "budget"),
        ({"budget": True}, "budget"),
        ({"issued": 51}, "issued"),
        ({"merchantAccountId": ""}, "merchantAccountId"),
        ({"templateCode": "OTHER"}, "templateCode"),
        ({"issue": 5}, "unknown"),
    ],
)
def test_template_put_validates(sandbox_admin: SandboxAdminClient, change: dict[str, Any], problem: str) -> None:
    body = {"merchantAccountId": MERCHANT, "status": "valid", "budget": 50, "issued": 5, **change}
    response = sandbox_admin.call("PUT", "templates/T1", body)
    assert response.status_code == 400
    assert problem in response.json()["error"]
    assert sandbox_admin.template("T1") is None


def test_fault_endpoints(sandbox_admin: SandboxAdminClient) -> None:
    created = sandbox_admin.call("POST", "faults", {"requestId": "f-1", "fault": "U_AFTER_APPLY", "attempt": 2})
    assert created.status_code == 201
    assert created.json() == {"requestId": "f-1", "fault": "U_AFTER_APPLY", "attempt": 2}
    sandbox_admin.add_fault("f-2", FaultKind.DELAY_AFTER_APPLY)
    assert sandbox_admin.faults() == [
        {"requestId": "f-1", "fault": "U_AFTER_APPLY", "attempt": 2},
        {"requestId": "f-2", "fault": "DELAY_AFTER_APPLY", "attempt": None, "delaySeconds": 5.0},
    ]
    sandbox_admin.clear_faults()
    assert sandbox_admin.faults() == []


@pytest.mark.parametrize(
    "body",
    [
        {"requestId": "x", "fault": "EXPLODE"},
        {"fault": "U_AFTER_APPLY"},
        {"requestId": "x", "fault": "U_AFTER_APPLY", "attempt": 0},
        {"requestId": "x", "fault": "U_AFTER_APPLY", "attempt": True},
        {"requestId": "x", "fault": "DELAY_AFTER_APPLY", "delaySeconds": -1},
        {"requestId": "x", "fault": "DELAY_AFTER_APPLY", "delaySeconds": "5"},
        {"requestId": "x", "fault": "U_AFTER_APPLY", "attempts": 1},
        ["not", "an", "object"],
    ],
)
def test_fault_endpoint_validates(sandbox_admin: SandboxAdminClient, body: Any) -> None:
    response = sandbox_admin.call("POST", "faults", body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert sandbox_admin.faults() == []


def test_admin_endpoints_refuse_wrong_methods_and_paths(sandbox_admin: SandboxAdminClient) -> None:
    wrong = sandbox_admin.call("DELETE", "stats")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "GET"
    assert sandbox_admin.call("GET", "nothing/here").status_code == 404
    assert sandbox_admin.call("GET", "templates/").status_code == 404


def test_request_record_of_unseen_request_id(sandbox_admin: SandboxAdminClient) -> None:
    assert sandbox_admin.request_record("never/sent") == {
        "requestId": "never/sent",
        "arrivals": 0,
        "applied": False,
        "answer": None,
    }


def test_stats_count_keep_alive_connections_and_api_requests(
    sandbox_admin: SandboxAdminClient, alipay_client: AlipayClient, credentials: Credentials
) -> None:
    before = sandbox_admin.stats()
    for i in range(5):
        body = BudgetUpdate(f"ka-{i}", MERCHANT, "DEMO-VALID", UpdateType.APPEND_BUDGET, 1).to_body()
        assert alipay_client.send(credentials, body, time.monotonic() + 10).disposition is Disposition.SUCCEEDED
    after = sandbox_admin.stats()
    assert after == {"connections": before["connections"] + 1, "requests": before["requests"] + 5}


def test_reset_restores_the_loaded_config(
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    client_private_key: rsa.RSAPrivateKey,
    spare_private_key: rsa.RSAPrivateKey,
) -> None:
    body = update_body("before-reset")
    post(sandbox, body, signed_headers(client_private_key, body))
    sandbox_admin.put_template("EXTRA", MERCHANT, "valid", 1, 0)
    sandbox_admin.add_fault("x", FaultKind.U_BEFORE_APPLY)
    sandbox_admin.register_key("OTHERCLIENT", "1", public_key_pem(spare_private_key))

    sandbox_admin.reset()

    assert budget(sandbox_admin) == 1000
    assert sandbox_admin.template("EXTRA") is None
    assert sandbox_admin.faults() == []
    assert sandbox_admin.request_record("before-reset") == {
        "requestId": "before-reset",
        "arrivals": 0,
        "applied": False,
        "answer": None,
    }
    assert sandbox_admin.stats()["requests"] == 0
    other = update_body("after-reset")
    assert result(post(sandbox, other, signed_headers(spare_private_key, other, client_id="OTHERCLIENT")))[1] == (
        "INVALID_CLIENT"
    )


def test_stop_interrupts_an_injected_delay(sandbox_config: SandboxConfig, credentials: Credentials) -> None:
    server = SandboxServer(sandbox_config).start()
    admin = SandboxAdminClient(server.url)
    admin.add_fault("slow-1", FaultKind.DELAY_AFTER_APPLY, delay_seconds=60)
    body = BudgetUpdate("slow-1", MERCHANT, "DEMO-VALID", UpdateType.APPEND_BUDGET, 1).to_body()
    outcome: list[AttemptResult] = []
    client = AlipayClient(server.url, RetryPolicy(max_attempts=1, read_timeout=30))
    sender = threading.Thread(
        target=lambda: outcome.append(client.send(credentials, body, time.monotonic() + 30).final)
    )
    sender.start()
    deadline = time.monotonic() + 10
    while not admin.request_record("slow-1")["applied"]:  # bounded poll: the handler is now waiting
        assert time.monotonic() < deadline, "the request never reached the sandbox"
    admin.close()

    started = time.monotonic()
    server.stop()
    sender.join(timeout=10)
    assert time.monotonic() - started < 3
    assert not sender.is_alive()
    assert outcome[0].disposition is Disposition.UNKNOWN  # the answer was dropped, never a false outcome
    client.close()


# --- configuration files -------------------------------------------------------------------------


def test_config_round_trip(tmp_path: Path, sandbox_config: SandboxConfig) -> None:
    path = tmp_path / "sandbox.json"
    save_config(sandbox_config, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_config(path) == sandbox_config
    data = json.loads(path.read_text())
    assert set(data) == {"privateKey", "clients", "templates"}
    assert set(data["clients"][DEMO_CLIENT_ID]["publicKeys"]) == {"1"}
    assert data["templates"][0] == {
        "templateCode": "DEMO-VALID",
        "merchantAccountId": MERCHANT,
        "status": "valid",
        "budget": 1000,
        "issued": 100,
    }


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"privateKey": None}, "privateKey"),
        ({"privateKey": "not a key"}, "privateKey"),
        ({"clients": []}, "clients"),
        ({"clients": {"C1": {"publicKeys": {"v1": "x"}}}}, "keyVersion"),
        ({"clients": {"C1": {"publicKeys": {"1": "bm90IGEga2V5"}}}}, "clients.C1.publicKeys.1"),
        ({"templates": [{"templateCode": "T"}]}, "templates[0]"),
        ({"templates": "T1"}, "templates"),
        ({"extra": 1}, "extra"),
    ],
)
def test_config_errors_name_the_field_not_the_key(
    sandbox_config: SandboxConfig, change: dict[str, Any], problem: str
) -> None:
    data = {**sandbox_config.to_dict(), **change}
    with pytest.raises(SandboxConfigError, match=re.escape(problem)) as raised:
        parse_config({k: v for k, v in data.items() if v is not None})
    assert "PRIVATE KEY" not in str(raised.value)
    assert "PUBLIC KEY" not in str(raised.value)


def test_repeated_template_codes_are_refused(sandbox_config: SandboxConfig) -> None:
    data = sandbox_config.to_dict()
    data["templates"].append(dict(data["templates"][0]))
    with pytest.raises(SandboxConfigError, match="repeated"):
        parse_config(data)


def test_demo_config_is_generated_once_then_reused(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    config, secret_path = demo_config(state_dir)
    assert secret_path == state_dir / SECRET_FILE_NAME
    for path in (state_dir / CONFIG_FILE_NAME, secret_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = json.loads(secret_path.read_text())
    assert set(secret) == {"clientId", "merchantAccountId", "privateKey", "keyVersion", "algorithm", "alipayPublicKey"}
    credentials = parse_credentials(secret)
    assert (credentials.client_id, credentials.merchant_account_id, credentials.key_version) == (
        DEMO_CLIENT_ID,
        MERCHANT,
        "1",
    )
    registered = load_public_key(config.clients[DEMO_CLIENT_ID]["1"])
    assert public_key_base64(registered) == public_key_base64(credentials.private_key)
    assert public_key_base64(credentials.alipay_public_key) == public_key_base64(config.sandbox_private_key())
    assert {t.template_code for t in config.templates} >= {"DEMO-VALID", "DEMO-FULL", "DEMO-CLOSED"}

    again, _ = demo_config(state_dir)
    assert again == config  # reused, not regenerated
    assert private_key_pem(again.sandbox_private_key()) == config.private_key


# --- the console script --------------------------------------------------------------------------


def _console_script() -> str:
    script = Path(sys.executable).with_name("ipass-sandbox")
    assert script.exists(), "install the project into the venv: pip install -e '.[dev]'"
    return str(script)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_cli_help() -> None:
    done = subprocess.run([_console_script(), "--help"], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0
    for option in ("--host", "--port", "--config", "--state-dir"):
        assert option in done.stdout


def test_cli_refuses_a_bad_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"privateKey": "nope"}')
    done = subprocess.run(
        [_console_script(), "--port", "0", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "privateKey" in done.stderr


def _wait_for_line(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Read the child's stdout until a line contains ``marker``; bounded, no sleeping."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            if not selector.select(remaining):
                break
            line = process.stdout.readline()
            if not line:
                break
            if marker in line:
                return line
    raise AssertionError(f"the sandbox did not print {marker!r} in time")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_demo_serves_the_generated_secret_and_stops_cleanly(tmp_path: Path, stop_signal: signal.Signals) -> None:
    port = _free_port()
    state_dir = tmp_path / "state"
    process = subprocess.Popen(
        [_console_script(), "--host", "127.0.0.1", "--port", str(port), "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = _wait_for_line(process, "listening on", timeout=30)
        url = f"http://127.0.0.1:{port}"
        assert url in line
        credentials = parse_credentials((state_dir / SECRET_FILE_NAME).read_text())
        client = AlipayClient(url, RetryPolicy(max_attempts=1))
        body = BudgetUpdate("cli-1", MERCHANT, "DEMO-VALID", UpdateType.APPEND_BUDGET, 3).to_body()
        final = client.send(credentials, body, time.monotonic() + 10).final
        client.close()
        assert (final.disposition, final.verified) == (Disposition.SUCCEEDED, True)
        assert requests.get(f"{url}/__sandbox/templates/DEMO-VALID", timeout=5).json()["budget"] == 1003
    finally:
        process.send_signal(stop_signal)
        try:
            stdout, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    assert process.returncode == 0, stderr
    assert "stopped" in stdout
    assert "PRIVATE KEY" not in stdout + stderr
