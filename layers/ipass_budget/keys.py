"""RSA key loading: PEM (PKCS#8 or PKCS#1) or bare base64 DER, parsed once per process.

Parsing an RSA private key costs tens of milliseconds (the primality checks dominate); signing
costs about one. Parsed keys are therefore cached by their text, so a warm Lambda never parses
the same key twice, and a rotated secret simply yields a new cache entry.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget.errors import ConfigurationError

MIN_KEY_BITS = 2048  # AlipayHK requires RSA-2048 key pairs.


def _der_from_base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{what} is neither PEM nor base64 DER") from None


def _check_size(key: rsa.RSAPrivateKey | rsa.RSAPublicKey, what: str) -> None:
    if key.key_size < MIN_KEY_BITS:
        raise ConfigurationError(f"{what} is {key.key_size}-bit RSA; at least {MIN_KEY_BITS} bits are required")


def _not_rsa(what: str) -> ConfigurationError:
    return ConfigurationError(f"{what} is not an RSA key (only RSA256 is supported)")


@lru_cache(maxsize=32)
def load_private_key(text: str, what: str = "privateKey") -> rsa.RSAPrivateKey:
    """Parse a private key given as PEM (PKCS#8 or PKCS#1) or bare base64 of PKCS#8/PKCS#1 DER."""
    data = text.strip()
    pem = data.startswith("-----BEGIN")
    der = b"" if pem else _der_from_base64(data, what)
    try:
        if pem:
            key = serialization.load_pem_private_key(data.encode("ascii"), password=None)
        else:
            # load_der_private_key accepts both PKCS#8 and "traditional" PKCS#1 DER.
            key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ConfigurationError(f"{what} could not be parsed as an unencrypted RSA private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _not_rsa(what)
    _check_size(key, what)
    return key


@lru_cache(maxsize=32)
def load_public_key(text: str, what: str = "alipayPublicKey") -> rsa.RSAPublicKey:
    """Parse a public key given as PEM (SubjectPublicKeyInfo or PKCS#1) or bare base64 SPKI DER."""
    data = text.strip()
    pem = data.startswith("-----BEGIN")
    der = b"" if pem else _der_from_base64(data, what)
    try:
        key = serialization.load_pem_public_key(data.encode("ascii")) if pem else serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ConfigurationError(f"{what} could not be parsed as an RSA public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise _not_rsa(what)
    _check_size(key, what)
    return key


def public_key_base64(key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> str:
    """Single-line base64 SubjectPublicKeyInfo, the form AlipayHK onboarding exchanges."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    """PKCS#8 PEM text of a private key (used only to write new secrets and sandbox configs)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def public_key_pem(key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> str:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


def generate_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=MIN_KEY_BITS)
