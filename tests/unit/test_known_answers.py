"""Known-answer tests: our signatures equal OpenSSL's byte for byte (alipay-protocol.md sections 3, 4, 9).

The expected values were produced once by tests/fixtures/make_fixtures.sh with the OpenSSL CLI; the
negative cases are the list of section 9.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget import UPDATE_BUDGET_PATH
from ipass_budget.keys import load_private_key, load_public_key, public_key_base64
from ipass_budget.models import BudgetUpdate, UpdateType
from ipass_budget.outcome import Disposition, Reason
from ipass_budget.response import evaluate_response
from ipass_budget.signing import (
    format_signature_header,
    parse_signature_header,
    sign,
    sign_request,
    signing_content,
    verify,
)

CLIENT_ID = "4Q5Y8W0WSG45P907917"
REQUEST_TIME = "2024-05-22T06:42:21+05:30"
SECTION9_BODY = (
    b'{"requestId":"22022091900135505000000000214447","merchantAccountId":"2160120041113167",'
    b'"templateCode":"82022031000135000000000000624234","updateType":"APPEND_BUDGET","number":1000}'
)
SECTION9_SHA256 = "c07db3b08c5c63307fe3575732d86650974bc4c820ec915920b5bdd096f6a5c0"
PRIVATE_FORMATS = ["partner.pkcs8.pem", "partner.pkcs1.pem", "partner.pkcs8.der.b64", "partner.pkcs1.der.b64"]
PUBLIC_FORMATS = ["partner.pub.pem", "partner.pub.spki.b64", "partner.pub.pkcs1.pem"]


def section9_update() -> BudgetUpdate:
    return BudgetUpdate(
        request_id="22022091900135505000000000214447",
        merchant_account_id="2160120041113167",
        template_code="82022031000135000000000000624234",
        update_type=UpdateType.APPEND_BUDGET,
        number=1000,
    )


def section9_content() -> bytes:
    return signing_content("POST", UPDATE_BUDGET_PATH, CLIENT_ID, REQUEST_TIME, section9_update().to_body())


@pytest.fixture(scope="module")
def request_content(fixtures_dir: Path) -> bytes:
    return (fixtures_dir / "signatures" / "request.content").read_bytes()


@pytest.fixture(scope="module")
def request_signature(fixtures_dir: Path) -> str:
    return (fixtures_dir / "signatures" / "request.partner.sig.b64").read_text(encoding="ascii")


# --- the canonical string (key-independent) ---------------------------------------------------------


def test_section9_body_is_the_canonical_compact_json() -> None:
    assert section9_update().to_body() == SECTION9_BODY


def test_section9_canonical_string_is_286_bytes_with_the_published_digest(request_content: bytes) -> None:
    content = section9_content()
    assert len(content) == 286
    assert hashlib.sha256(content).hexdigest() == SECTION9_SHA256
    assert content == request_content  # the exact bytes OpenSSL signed
    assert content.startswith(b"POST /api/open/alipay/v1/ipass/template/manage/updateBudget\n4Q5Y8W0WSG45P907917.")
    assert content.count(b"\n") == 1
    assert b"\r" not in content


def test_fixture_contents_match_their_recorded_digests(fixtures_dir: Path) -> None:
    sums = (fixtures_dir / "signatures" / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == 2
    for line in sums:
        digest, name = line.split()
        assert hashlib.sha256((fixtures_dir / "signatures" / name).read_bytes()).hexdigest() == digest


# --- signatures equal OpenSSL's ---------------------------------------------------------------------


@pytest.mark.parametrize("key_file", PRIVATE_FORMATS)
def test_sign_reproduces_the_openssl_signature_with_every_key_format(
    key_file: str, key_text: Callable[[str], str], request_content: bytes, request_signature: str
) -> None:
    key = load_private_key(key_text(key_file))
    assert sign(key, request_content) == request_signature
    assert len(request_signature) == 344  # 256-byte RSA-2048 signature, padded base64


def test_sign_request_reproduces_the_openssl_signature_header(
    partner_key: rsa.RSAPrivateKey, request_signature: str
) -> None:
    now = datetime(2024, 5, 22, 6, 42, 21, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    headers = sign_request(partner_key, CLIENT_ID, "1", UPDATE_BUDGET_PATH, section9_update().to_body(), now=now)
    assert headers == {
        "Content-Type": "application/json; charset=UTF-8",
        "Client-Id": CLIENT_ID,
        "Request-Time": REQUEST_TIME,
        "Signature": "algorithm=RSA256,keyVersion=1,signature=" + quote(request_signature, safe=""),
    }


def test_response_fixture_verifies_and_is_reproduced(
    gateway_key: rsa.RSAPrivateKey, gateway_public_key: rsa.RSAPublicKey, fixtures_dir: Path
) -> None:
    content = (fixtures_dir / "signatures" / "response.content").read_bytes()
    expected = (fixtures_dir / "signatures" / "response.gateway.sig.b64").read_text(encoding="ascii")
    assert "成功".encode() in content  # raw UTF-8 body bytes are what is signed
    assert sign(gateway_key, content) == expected
    assert verify(gateway_public_key, content, base64.b64decode(expected))


def test_signed_response_fixture_is_accepted_by_evaluate_response(
    gateway_public_key: rsa.RSAPublicKey, fixtures_dir: Path
) -> None:
    content = (fixtures_dir / "signatures" / "response.content").read_bytes()
    expected = (fixtures_dir / "signatures" / "response.gateway.sig.b64").read_text(encoding="ascii")
    prefix = signing_content("POST", UPDATE_BUDGET_PATH, CLIENT_ID, "2024-05-22T09:12:21Z", b"")
    assert content.startswith(prefix)
    body = content[len(prefix) :]
    result = evaluate_response(
        http_status=200,
        headers={
            "signature": f"algorithm=RSA256,keyVersion=1,signature={quote(expected, safe='')}",
            "response-time": "2024-05-22T09:12:21Z",
            "client-id": CLIENT_ID,
        },
        body=body,
        path=UPDATE_BUDGET_PATH,
        client_id=CLIENT_ID,
        alipay_public_key=gateway_public_key,
    )
    assert (result.disposition, result.reason, result.verified) == (Disposition.SUCCEEDED, Reason.ANSWERED, True)
    assert result.result_info is not None
    assert result.result_info.result_msg == "成功 — ok"


# --- every key format is the same key ---------------------------------------------------------------


def test_every_private_key_format_loads_to_the_same_key(key_text: Callable[[str], str]) -> None:
    numbers = {load_private_key(key_text(name)).private_numbers() for name in PRIVATE_FORMATS}
    assert len(numbers) == 1


def test_every_public_key_format_loads_to_the_public_half(
    key_text: Callable[[str], str], partner_key: rsa.RSAPrivateKey
) -> None:
    expected = partner_key.public_key().public_numbers()
    for name in PUBLIC_FORMATS:
        assert load_public_key(key_text(name)).public_numbers() == expected, name
    assert public_key_base64(partner_key) == key_text("partner.pub.spki.b64")


def test_bare_base64_keys_may_be_wrapped_over_several_lines(key_text: Callable[[str], str]) -> None:
    flat = key_text("partner.pkcs8.der.b64")
    wrapped = "\n".join(flat[i : i + 64] for i in range(0, len(flat), 64)) + "\n"
    assert load_private_key(wrapped).private_numbers() == load_private_key(flat).private_numbers()


def test_pem_with_crlf_line_endings_loads(key_text: Callable[[str], str]) -> None:
    pem = key_text("partner.pkcs8.pem")
    crlf = pem.replace("\n", "\r\n")
    assert load_private_key(crlf).private_numbers() == load_private_key(pem).private_numbers()
    pub = key_text("partner.pub.pem")
    assert load_public_key(pub.replace("\n", "\r\n")).public_numbers() == load_public_key(pub).public_numbers()


# --- OpenSSL accepts what we sign -------------------------------------------------------------------

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")


def _openssl_verify(public_pem: Path, content: bytes, signature: bytes, tmp_path: Path) -> bool:
    assert OPENSSL is not None
    (tmp_path / "content").write_bytes(content)
    (tmp_path / "sig.bin").write_bytes(signature)
    done = subprocess.run(
        [OPENSSL, "dgst", "-sha256", "-verify", str(public_pem), "-signature", str(tmp_path / "sig.bin")],
        input=content,
        capture_output=True,
        check=False,
        timeout=30,
    )
    return done.returncode == 0 and b"Verified OK" in done.stdout


@needs_openssl
def test_openssl_verifies_a_signature_our_code_made(
    partner_key: rsa.RSAPrivateKey, keys_dir: Path, tmp_path: Path
) -> None:
    body = json.dumps({"requestId": "r-ü-1", "number": 5}, ensure_ascii=False).encode()
    headers = sign_request(partner_key, "CLIENT-X", "7", UPDATE_BUDGET_PATH, body)
    content = signing_content("POST", UPDATE_BUDGET_PATH, "CLIENT-X", headers["Request-Time"], body)
    signature = parse_signature_header(headers["Signature"]).signature
    assert _openssl_verify(keys_dir / "partner.pub.pem", content, signature, tmp_path)
    # ... and rejects it for content that differs by one byte, or under the other key.
    assert not _openssl_verify(keys_dir / "partner.pub.pem", content + b" ", signature, tmp_path)
    assert not _openssl_verify(keys_dir / "gateway.pub.pem", content, signature, tmp_path)


# --- percent-encoding vector ------------------------------------------------------------------------


def test_percent_encoding_vector() -> None:
    header = format_signature_header("ab+/cd==", "1")
    assert header == "algorithm=RSA256,keyVersion=1,signature=ab%2B%2Fcd%3D%3D"
    assert parse_signature_header(header).signature == base64.b64decode("ab+/cd==")


# --- negative cases of section 9 --------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(section9_content().replace(b"\n", b"\r\n"), id="CRLF instead of LF"),
        pytest.param(section9_content() + b"\n", id="trailing newline"),
        pytest.param(
            signing_content(
                "POST",
                "https://open.alipay.hk" + UPDATE_BUDGET_PATH,
                CLIENT_ID,
                REQUEST_TIME,
                section9_update().to_body(),
            ),
            id="host in URI",
        ),
        pytest.param(
            signing_content(
                "POST", UPDATE_BUDGET_PATH, CLIENT_ID, "2024-05-22T06:42:22+05:30", section9_update().to_body()
            ),
            id="header time differs from signed time",
        ),
        pytest.param(
            signing_content(
                "POST", UPDATE_BUDGET_PATH, CLIENT_ID, REQUEST_TIME, json.dumps(section9_update().to_dict()).encode()
            ),
            id="body re-serialised with spaces",
        ),
        pytest.param(b"post" + section9_content()[4:], id="lowercase method"),
        pytest.param(section9_content().replace(b"\n", b" ", 1), id="space instead of LF"),
    ],
)
def test_the_openssl_signature_does_not_verify_for_altered_content(
    content: bytes, partner_public_key: rsa.RSAPublicKey, request_content: bytes, request_signature: str
) -> None:
    signature = base64.b64decode(request_signature)
    assert verify(partner_public_key, request_content, signature)  # control: the original verifies
    assert content != request_content
    assert not verify(partner_public_key, content, signature)


def test_signing_content_uppercases_the_method() -> None:
    assert signing_content("post", "/p", "c", "t", b"{}") == b"POST /p\nc.t.{}"


def test_verifying_with_the_wrong_public_key_fails(
    gateway_public_key: rsa.RSAPublicKey, request_content: bytes, request_signature: str
) -> None:
    assert not verify(gateway_public_key, request_content, base64.b64decode(request_signature))


def _section9_answer_headers(signature_b64: str, **overrides: str) -> dict[str, str]:
    headers = {
        "Signature": f"algorithm=RSA256,keyVersion=1,signature={quote(signature_b64, safe='')}",
        "Response-Time": "2024-05-22T09:12:21Z",
    }
    headers.update(overrides)
    return headers


@pytest.fixture(scope="module")
def signed_success(gateway_key: rsa.RSAPrivateKey) -> tuple[bytes, str]:
    body = b'{"resultInfo":{"resultCode":"SUCCESS","resultStatus":"S","resultMsg":"success"}}'
    content = signing_content("POST", UPDATE_BUDGET_PATH, CLIENT_ID, "2024-05-22T09:12:21Z", body)
    return body, sign(gateway_key, content)


def _evaluate(headers: dict[str, str], body: bytes, public_key: rsa.RSAPublicKey) -> tuple[Disposition, Reason]:
    result = evaluate_response(
        http_status=200,
        headers=headers,
        body=body,
        path=UPDATE_BUDGET_PATH,
        client_id=CLIENT_ID,
        alipay_public_key=public_key,
    )
    return result.disposition, result.reason


def test_signature_header_with_spaces_after_commas_verifies(
    signed_success: tuple[bytes, str], gateway_public_key: rsa.RSAPublicKey
) -> None:
    body, signature = signed_success
    spaced = f"algorithm=RSA256, keyVersion=1, signature={quote(signature, safe='')}"
    assert _evaluate({"Signature": spaced, "Response-Time": "2024-05-22T09:12:21Z"}, body, gateway_public_key) == (
        Disposition.SUCCEEDED,
        Reason.ANSWERED,
    )


def test_lowercase_percent_escapes_verify(
    signed_success: tuple[bytes, str], gateway_public_key: rsa.RSAPublicKey
) -> None:
    body, signature = signed_success
    encoded = quote(signature, safe="").replace("%2B", "%2b").replace("%2F", "%2f").replace("%3D", "%3d")
    assert "%3d" in encoded  # 256 bytes always end in '==' padding
    headers = {
        "Signature": f"algorithm=RSA256,keyVersion=1,signature={encoded}",
        "Response-Time": "2024-05-22T09:12:21Z",
    }
    assert _evaluate(headers, body, gateway_public_key) == (Disposition.SUCCEEDED, Reason.ANSWERED)


def test_response_signature_with_header_time_other_than_signed_time_is_unverifiable(
    signed_success: tuple[bytes, str], gateway_public_key: rsa.RSAPublicKey
) -> None:
    body, signature = signed_success
    headers = _section9_answer_headers(signature, **{"Response-Time": "2024-05-22T09:12:22Z"})
    assert _evaluate(headers, body, gateway_public_key) == (Disposition.UNKNOWN, Reason.BAD_SIGNATURE)


def test_response_body_reserialised_with_spaces_is_unverifiable(
    signed_success: tuple[bytes, str], gateway_public_key: rsa.RSAPublicKey
) -> None:
    body, signature = signed_success
    spaced = json.dumps(json.loads(body)).encode()
    assert spaced != body
    assert _evaluate(_section9_answer_headers(signature), spaced, gateway_public_key) == (
        Disposition.UNKNOWN,
        Reason.BAD_SIGNATURE,
    )


def test_response_verified_with_our_own_public_key_is_unverifiable(
    signed_success: tuple[bytes, str], partner_public_key: rsa.RSAPublicKey
) -> None:
    body, signature = signed_success
    assert _evaluate(_section9_answer_headers(signature), body, partner_public_key) == (
        Disposition.UNKNOWN,
        Reason.BAD_SIGNATURE,
    )


def test_missing_response_time_is_refused(
    signed_success: tuple[bytes, str], gateway_public_key: rsa.RSAPublicKey
) -> None:
    body, signature = signed_success
    headers = _section9_answer_headers(signature)
    del headers["Response-Time"]
    assert _evaluate(headers, body, gateway_public_key) == (Disposition.UNKNOWN, Reason.PARTLY_SIGNED)


def test_unsigned_success_is_refused(signed_success: tuple[bytes, str], gateway_public_key: rsa.RSAPublicKey) -> None:
    body, _ = signed_success
    assert _evaluate({}, body, gateway_public_key) == (Disposition.UNKNOWN, Reason.UNSIGNED_SUCCESS)


def test_answer_fixture_builder_signs_like_the_gateway(
    answer: Callable[..., requests.Response], gateway_public_key: rsa.RSAPublicKey
) -> None:
    response = answer(b'{"resultInfo":{"resultCode":"SUCCESS","resultStatus":"S","resultMsg":""}}')
    assert _evaluate(dict(response.headers), response.content, gateway_public_key) == (
        Disposition.SUCCEEDED,
        Reason.ANSWERED,
    )
