"""The signing secret and key loading: every problem is named, no message carries key material."""

from __future__ import annotations

import base64
import json
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from ipass_budget.credentials import Credentials, parse_credentials
from ipass_budget.errors import ConfigurationError
from ipass_budget.keys import (
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_base64,
    public_key_pem,
)
from ipass_budget.signing import RSA256, check_algorithm

REQUIRED = ["clientId", "merchantAccountId", "privateKey", "alipayPublicKey"]


def _chunks(text: str, size: int = 16) -> list[str]:
    """Pieces of the base64 body of a key, to look for in messages."""
    body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    body = "".join(body.split())
    return [body[i : i + size] for i in range(0, max(len(body) - size, 1), size)]


def assert_no_key_material(exc: BaseException, *key_texts: str) -> None:
    """Neither the message nor the formatted traceback (what a log would show) quotes any key."""
    shown = str(exc) + "".join(traceback.format_exception(exc))
    for text in key_texts:
        assert not any(chunk in shown for chunk in _chunks(text) if chunk), "key material in the error"
    assert "BEGIN" not in str(exc)


@pytest.fixture(scope="module")
def small_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused on purpose


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP224R1())  # the curve an "ECC224" key would most likely use


def _pkcs8(key: Any) -> str:
    text: str = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return text


def _spki(key: Any) -> str:
    text: str = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return text


# --- parse_credentials ------------------------------------------------------------------------------


def test_a_complete_secret_parses(secret: dict[str, str], partner_key: rsa.RSAPrivateKey) -> None:
    creds = parse_credentials(json.dumps(secret))
    assert (creds.client_id, creds.merchant_account_id, creds.key_version, creds.algorithm) == (
        secret["clientId"],
        secret["merchantAccountId"],
        "1",
        RSA256,
    )
    assert creds.private_key.private_numbers() == partner_key.private_numbers()
    assert public_key_base64(creds.alipay_public_key) == secret["alipayPublicKey"]


def test_optional_fields_default(secret: dict[str, str]) -> None:
    minimal = {k: v for k, v in secret.items() if k in REQUIRED}
    creds = parse_credentials(minimal)
    assert (creds.key_version, creds.algorithm) == ("1", RSA256)
    assert parse_credentials({**minimal, "keyVersion": 3, "algorithm": "rsa256"}).key_version == "3"
    assert parse_credentials({**minimal, "algorithm": " rsa256 "}).algorithm == RSA256


@pytest.mark.parametrize("name", REQUIRED)
@pytest.mark.parametrize("how", ["absent", "empty", "blank", "null", "number"])
def test_each_missing_field_is_named(secret: dict[str, str], name: str, how: str) -> None:
    broken: dict[str, Any] = dict(secret)
    if how == "absent":
        del broken[name]
    else:
        broken[name] = {"empty": "", "blank": "  \n", "null": None, "number": 12}[how]
    with pytest.raises(ConfigurationError) as caught:
        parse_credentials(broken)
    message = str(caught.value)
    assert name in message
    assert [n for n in REQUIRED if n in message] == [name]
    assert_no_key_material(caught.value, secret["privateKey"], secret["alipayPublicKey"])


def test_all_missing_fields_are_named_at_once() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_credentials({"keyVersion": "1"})
    assert all(name in str(caught.value) for name in REQUIRED)


@pytest.mark.parametrize(
    "text",
    ["", "not json", "{", '"a string"', "[1]", "null", pytest.param("[" * 100_000 + "]" * 100_000, id="deeply-nested")],
)
def test_a_secret_that_is_not_a_json_object_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="signing secret"):
        parse_credentials(text)


@pytest.mark.parametrize(("name", "value"), [("clientId", "has space"), ("merchantAccountId", "x" * 65)])
def test_bad_identifiers_are_named_without_echoing_them(secret: dict[str, str], name: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_credentials({**secret, name: value})
    assert name in str(caught.value)
    assert value not in str(caught.value)


@pytest.mark.parametrize("value", ["v1", "1.0", "-1", "0", "00", "²", "\u0661", True, 0, 1.5, " ", "1 "])
def test_key_version_must_be_a_positive_ascii_number(secret: dict[str, str], value: object) -> None:
    with pytest.raises(ConfigurationError, match="keyVersion"):
        parse_credentials({**secret, "keyVersion": value})


@pytest.mark.parametrize("value", ["1", "2", "17", 4])
def test_key_version_accepts_whole_numbers(secret: dict[str, str], value: object) -> None:
    assert parse_credentials({**secret, "keyVersion": value}).key_version == str(value)


def test_ecc224_is_refused_with_a_clear_message(secret: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_credentials({**secret, "algorithm": "ECC224"})
    message = str(caught.value)
    assert "ECC224" in message
    assert "not supported" in message
    assert "RSA256" in message
    with pytest.raises(ConfigurationError, match="ECC224"):
        check_algorithm("ecc224")


@pytest.mark.parametrize("value", ["sha256withrsa", "RSA", "RSA2048", "HS256", "x" * 500])
def test_other_algorithms_are_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match="RSA256") as caught:
        check_algorithm(value)
    assert len(str(caught.value)) < 200


def test_credentials_repr_hides_the_keys(credentials: Credentials) -> None:
    text = repr(credentials)
    assert "private_key" not in text
    assert "alipay_public_key" not in text
    assert credentials.client_id in text


# --- keys: formats, refusals, caching ---------------------------------------------------------------


def test_loading_the_same_text_twice_returns_the_same_object(key_text: Callable[[str], str]) -> None:
    private_text = key_text("gateway.pkcs1.pem")
    public_text = key_text("gateway.pub.spki.b64")
    assert load_private_key(private_text) is load_private_key(private_text)
    assert load_public_key(public_text) is load_public_key(public_text)


def test_parse_credentials_reuses_parsed_keys(secret: dict[str, str]) -> None:
    first, second = parse_credentials(dict(secret)), parse_credentials(json.dumps(secret))
    assert first.private_key is second.private_key
    assert first.alipay_public_key is second.alipay_public_key


def test_small_rsa_keys_are_refused(small_rsa: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ConfigurationError, match="1024-bit") as caught:
        load_private_key(_pkcs8(small_rsa))
    assert "2048" in str(caught.value)
    assert_no_key_material(caught.value, _pkcs8(small_rsa))
    with pytest.raises(ConfigurationError, match="1024-bit"):
        load_public_key(_spki(small_rsa))
    with pytest.raises(ConfigurationError, match="alipayPublicKey"):
        load_public_key(public_key_base64(small_rsa))


def test_small_keys_are_refused_through_the_secret(secret: dict[str, str], small_rsa: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ConfigurationError, match="privateKey"):
        parse_credentials({**secret, "privateKey": _pkcs8(small_rsa)})
    with pytest.raises(ConfigurationError, match="alipayPublicKey"):
        parse_credentials({**secret, "alipayPublicKey": _spki(small_rsa)})


@pytest.mark.parametrize("kind", ["ec", "ed25519"])
def test_non_rsa_keys_are_refused(kind: str, ec_key: ec.EllipticCurvePrivateKey) -> None:
    key: Any = ec_key if kind == "ec" else ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(ConfigurationError, match="not an RSA key") as caught:
        load_private_key(_pkcs8(key))
    assert_no_key_material(caught.value, _pkcs8(key))
    with pytest.raises(ConfigurationError, match="not an RSA key"):
        load_public_key(_spki(key))


def _bad_keys(key_text: Callable[[str], str]) -> dict[str, str]:
    pem = key_text("partner.pkcs8.pem")
    lines = pem.splitlines()
    return {
        "garbage": "this is not a key",
        "base64 of garbage": base64.b64encode(b"not DER at all" * 10).decode(),
        "truncated PEM": "\n".join([*lines[: len(lines) // 2], lines[-1]]),
        "corrupted PEM body": pem.replace(lines[5], lines[5][::-1]),
        "truncated base64 DER": key_text("partner.pkcs8.der.b64")[:800],
        "public key where a private key belongs": key_text("partner.pub.pem"),
        "non-ASCII": "-----BEGIN PRIVATE KEY-----\nMIIEvQ€\n-----END PRIVATE KEY-----\n",
        "PEM armour only": "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
    }


@pytest.mark.parametrize(
    "case",
    [
        "garbage",
        "base64 of garbage",
        "truncated PEM",
        "corrupted PEM body",
        "truncated base64 DER",
        "public key where a private key belongs",
        "non-ASCII",
        "PEM armour only",
    ],
)
def test_bad_private_keys_are_refused_without_echoing_them(
    case: str, key_text: Callable[[str], str], secret: dict[str, str]
) -> None:
    text = _bad_keys(key_text)[case]
    with pytest.raises(ConfigurationError) as caught:
        parse_credentials({**secret, "privateKey": text})
    assert "privateKey" in str(caught.value)
    assert_no_key_material(caught.value, text, key_text("partner.pkcs8.pem"))


def test_pem_whose_newlines_were_flattened_to_spaces_still_loads(key_text: Callable[[str], str]) -> None:
    # A common result of pasting a PEM into a console text field; the PEM parser tolerates it.
    pem = key_text("partner.pkcs8.pem")
    assert load_private_key(pem.replace("\n", " ")).private_numbers() == load_private_key(pem).private_numbers()


def test_encrypted_private_keys_are_refused(partner_key: rsa.RSAPrivateKey) -> None:
    encrypted = partner_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass phrase"),
    ).decode()
    with pytest.raises(ConfigurationError, match="unencrypted") as caught:
        load_private_key(encrypted)
    assert_no_key_material(caught.value, encrypted, private_key_pem(partner_key))


@pytest.mark.parametrize(
    "case", ["garbage", "base64 of garbage", "private key where the public key belongs", "truncated SPKI"]
)
def test_bad_public_keys_are_refused_without_echoing_them(
    case: str, key_text: Callable[[str], str], secret: dict[str, str]
) -> None:
    text = {
        "garbage": "not a key",
        "base64 of garbage": base64.b64encode(b"\x30\x82" + b"\x00" * 40).decode(),
        "private key where the public key belongs": key_text("gateway.pkcs8.pem"),
        "truncated SPKI": key_text("gateway.pub.spki.b64")[:200],
    }[case]
    with pytest.raises(ConfigurationError) as caught:
        parse_credentials({**secret, "alipayPublicKey": text})
    assert "alipayPublicKey" in str(caught.value)
    assert_no_key_material(caught.value, text, key_text("gateway.pkcs8.pem"))


def _fixed_messages(what: str) -> set[str]:
    return {
        f"{what} is neither PEM nor base64 DER",
        f"{what} could not be parsed as an unencrypted RSA private key",
        f"{what} could not be parsed as an RSA public key",
        f"{what} is not an RSA key (only RSA256 is supported)",
    }


@given(text=st.text(max_size=200) | st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()))
def test_arbitrary_text_fails_with_a_fixed_message(text: str) -> None:
    for load, what in ((load_private_key, "privateKey"), (load_public_key, "alipayPublicKey")):
        with pytest.raises(ConfigurationError) as caught:
            load(text, what)
        assert str(caught.value) in _fixed_messages(what)


def test_written_pem_forms_load_back(partner_key: rsa.RSAPrivateKey) -> None:
    assert load_private_key(private_key_pem(partner_key)).private_numbers() == partner_key.private_numbers()
    assert load_public_key(public_key_pem(partner_key)).public_numbers() == partner_key.public_key().public_numbers()
    assert public_key_base64(partner_key) == public_key_base64(partner_key.public_key())
