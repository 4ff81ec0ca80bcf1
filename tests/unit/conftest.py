"""Shared fixtures of the unit tests: the committed test-only keys and a signed-answer builder.

The keys come from tests/fixtures/test-only-keys-never-use (see tests/fixtures/README.md), so no test
generates a 2048-bit key. Hypothesis profiles keep the suite fast: ``unit`` is the default, RSA-heavy
properties opt into the smaller ``rsa`` profile with ``@settings(settings.get_profile("rsa"))``.
Set HYPOTHESIS_PROFILE=thorough for a long local run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, settings
from requests.structures import CaseInsensitiveDict

from ipass_budget import UPDATE_BUDGET_PATH
from ipass_budget.credentials import Credentials, parse_credentials
from ipass_budget.keys import load_private_key, load_public_key
from ipass_budget.signing import sign, signing_content

settings.register_profile("unit", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("rsa", max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "unit"))

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KEYS = FIXTURES / "test-only-keys-never-use"
CLIENT_ID = "4Q5Y8W0WSG45P907917"
MERCHANT = "2160120041113167"
RESPONSE_TIME = "2024-05-22T09:12:21Z"


def _key_text(name: str) -> str:
    return (KEYS / name).read_text(encoding="ascii")


@pytest.fixture(scope="session")
def key_text() -> Callable[[str], str]:
    """The text of one fixture key file, e.g. ``key_text("partner.pkcs8.pem")``."""
    return _key_text


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def keys_dir() -> Path:
    return KEYS


@pytest.fixture(scope="session")
def partner_key() -> rsa.RSAPrivateKey:
    """The merchant's (our) test-only private key: signs requests."""
    return load_private_key(_key_text("partner.pkcs8.pem"))


@pytest.fixture(scope="session")
def gateway_key() -> rsa.RSAPrivateKey:
    """The stand-in for AlipayHK's private key: signs answers."""
    return load_private_key(_key_text("gateway.pkcs8.pem"))


@pytest.fixture(scope="session")
def partner_public_key() -> rsa.RSAPublicKey:
    return load_public_key(_key_text("partner.pub.pem"), "partnerPublicKey")


@pytest.fixture(scope="session")
def gateway_public_key() -> rsa.RSAPublicKey:
    return load_public_key(_key_text("gateway.pub.pem"))


@pytest.fixture(scope="session")
def secret() -> dict[str, str]:
    """A complete signing secret (contract section 3) made of the fixture keys."""
    return {
        "clientId": CLIENT_ID,
        "merchantAccountId": MERCHANT,
        "privateKey": _key_text("partner.pkcs8.pem"),
        "keyVersion": "1",
        "algorithm": "RSA256",
        "alipayPublicKey": _key_text("gateway.pub.spki.b64"),
    }


@pytest.fixture(scope="session")
def credentials(secret: dict[str, str]) -> Credentials:
    return parse_credentials(secret)


def _result_json(status: str, code: str, message: str = "", *, key: str = "resultInfo") -> bytes:
    msg_key = "resultMsg" if key == "resultInfo" else "resultMessage"
    return json.dumps({key: {"resultCode": code, "resultStatus": status, msg_key: message}}).encode()


@pytest.fixture(scope="session")
def result_json() -> Callable[..., bytes]:
    """``result_json("S", "SUCCESS")``: an answer body; ``key="result"`` gives the AMS-style shape."""
    return _result_json


@pytest.fixture(scope="session")
def answer(gateway_key: rsa.RSAPrivateKey) -> Callable[..., requests.Response]:
    """Build an HTTP answer as AlipayHK sends it: signed by the gateway key over
    (request path, Client-Id, Response-Time, raw body).

    ``signed=False`` leaves out both signature headers; ``key=`` signs with another key; ``client_id=``
    signs for (and names) another client; ``header_time=`` sends a Response-Time other than the signed
    one; ``algorithm=`` changes the algorithm named in the Signature header; ``extra=`` adds headers.
    """

    def build(
        body: bytes,
        *,
        status: int = 200,
        signed: bool = True,
        key: rsa.RSAPrivateKey | None = None,
        client_id: str = CLIENT_ID,
        header_time: str | None = None,
        algorithm: str = "RSA256",
        extra: dict[str, str] | None = None,
    ) -> requests.Response:
        headers = {"Content-Type": "application/json; charset=UTF-8", "Tracer-Id": "trace-0001"}
        if signed:
            content = signing_content("POST", UPDATE_BUDGET_PATH, client_id, RESPONSE_TIME, body)
            signature = sign(key or gateway_key, content)
            headers["Client-Id"] = client_id
            headers["Response-Time"] = header_time or RESPONSE_TIME
            headers["Signature"] = f"algorithm={algorithm},keyVersion=1,signature={quote(signature, safe='')}"
        headers.update(extra or {})
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
        response._content = body
        return response

    return build
