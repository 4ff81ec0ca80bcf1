"""The signing secret (contract section 3) turned into ready-to-use, parsed keys."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget.errors import ConfigurationError
from ipass_budget.keys import load_private_key, load_public_key
from ipass_budget.models import token_problem
from ipass_budget.signing import DEFAULT_KEY_VERSION, RSA256, check_algorithm

_REQUIRED = ("clientId", "merchantAccountId", "privateKey", "alipayPublicKey")


@dataclass(frozen=True, slots=True)
class Credentials:
    client_id: str
    merchant_account_id: str
    key_version: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    alipay_public_key: rsa.RSAPublicKey = field(repr=False)
    algorithm: str = RSA256


def parse_credentials(secret: str | dict[str, Any]) -> Credentials:
    """Validate the secret JSON and parse its keys (cached per key text, see keys.py).

    Raises ConfigurationError naming the problem fields; never echoes their values.
    """
    data: Any = secret
    if isinstance(secret, str):
        try:
            data = json.loads(secret)
        except (ValueError, RecursionError):
            raise ConfigurationError("signing secret is not valid JSON") from None
    if not isinstance(data, dict):
        raise ConfigurationError("signing secret must be a JSON object")
    missing = [name for name in _REQUIRED if not isinstance(data.get(name), str) or not data[name].strip()]
    if missing:
        raise ConfigurationError(f"signing secret lacks or has empty fields: {', '.join(missing)}")
    raw_version = data.get("keyVersion")
    key_version = DEFAULT_KEY_VERSION if raw_version is None or raw_version == "" else str(raw_version)
    # isdigit() alone accepts "²" and other Unicode digits, which would end up in the Signature header.
    if not (key_version.isascii() and key_version.isdigit()) or not key_version.strip("0"):
        raise ConfigurationError("signing secret keyVersion must be a positive whole number")
    for name in ("clientId", "merchantAccountId"):
        if problem := token_problem(data[name], 128 if name == "clientId" else 64):
            raise ConfigurationError(f"signing secret {name} {problem}")
    return Credentials(
        client_id=data["clientId"],
        merchant_account_id=data["merchantAccountId"],
        key_version=key_version,
        algorithm=check_algorithm(str(data.get("algorithm") or RSA256)),
        private_key=load_private_key(data["privateKey"], "privateKey"),
        alipay_public_key=load_public_key(data["alipayPublicKey"], "alipayPublicKey"),
    )
