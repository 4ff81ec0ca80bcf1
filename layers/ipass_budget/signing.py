"""AlipayHK open-API message signatures (SHA256withRSA, PKCS#1 v1.5).

Signed content, for requests and responses alike (alipay-protocol.md sections 3 and 4)::

    POST <request path>\\n<Client-Id>.<Request-Time or Response-Time>.<raw body>

The signature travels as ``Signature: algorithm=RSA256,keyVersion=N,signature=<pct(base64)>``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ipass_budget.errors import ConfigurationError

RSA256 = "RSA256"
ECC224 = "ECC224"
DEFAULT_KEY_VERSION = "1"

_ALGORITHM_NAME = re.compile(r"[A-Za-z0-9_-]{1,16}")
_PADDING = padding.PKCS1v15()
_HASH = hashes.SHA256()


class SignatureHeaderError(ValueError):
    """A Signature header that cannot be read (missing parts, bad encoding)."""


def check_algorithm(algorithm: str) -> str:
    """Normalise a configured algorithm name; only RSA256 is supported.

    ECC224 is listed by AlipayHK but defined nowhere (curve, hash, encoding are unknown), so it is
    refused rather than guessed: a wrong guess would fail every call at run time instead of at
    configuration time.
    """
    name = algorithm.strip().upper()
    if name == RSA256:
        return RSA256
    if name == ECC224:
        raise ConfigurationError(
            "algorithm ECC224 is not supported: AlipayHK does not define its curve, hash or "
            "signature encoding; use RSA256"
        )
    # The value comes from the secret: name it only when it looks like an algorithm name, so a key
    # pasted into the wrong field never reaches an answer or a log line.
    shown = repr(algorithm) if _ALGORITHM_NAME.fullmatch(algorithm) else f"a {len(algorithm)}-character value"
    raise ConfigurationError(f"algorithm must be RSA256, got {shown}")


def timestamp(now: datetime | None = None) -> str:
    """An ISO-8601 time with an explicit offset, e.g. ``2024-05-22T06:42:21+00:00``."""
    moment = datetime.now(UTC) if now is None else now
    if moment.tzinfo is None:
        raise ValueError("timestamp() needs an aware datetime")
    return moment.isoformat(timespec="seconds")


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO-8601 date-time that carries a zone (``Z`` or an offset); raise ValueError if not."""
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if "T" not in text.upper() or moment.tzinfo is None:
        raise ValueError("must be an ISO-8601 date-time with a timezone")
    return moment


def signing_content(method: str, path: str, client_id: str, time: str, body: bytes) -> bytes:
    """The exact bytes that are signed: method, path, LF, Client-Id, time and body joined by dots."""
    return f"{method.upper()} {path}\n{client_id}.{time}.".encode() + body


def sign(private_key: rsa.RSAPrivateKey, content: bytes) -> str:
    """Standard base64 of the SHA256withRSA (PKCS#1 v1.5) signature of ``content``."""
    return base64.b64encode(private_key.sign(content, _PADDING, _HASH)).decode("ascii")


def verify(public_key: rsa.RSAPublicKey, content: bytes, signature: bytes) -> bool:
    try:
        public_key.verify(signature, content, _PADDING, _HASH)
    except InvalidSignature:
        return False
    return True


def format_signature_header(signature_b64: str, key_version: str, algorithm: str = RSA256) -> str:
    # Percent-encode the base64 (+ / = become %2B %2F %3D), as every AlipayHK SDK does.
    return f"algorithm={algorithm},keyVersion={key_version},signature={quote(signature_b64, safe='')}"


@dataclass(frozen=True, slots=True)
class SignatureHeader:
    algorithm: str
    key_version: str | None
    signature: bytes

    def __repr__(self) -> str:  # never print signature bytes into logs by accident
        return f"SignatureHeader(algorithm={self.algorithm!r}, key_version={self.key_version!r})"


def parse_signature_header(value: str) -> SignatureHeader:
    """Read ``algorithm=..,keyVersion=..,signature=..`` robustly.

    Accepts spaces around parts, keys in any case, upper- or lowercase percent escapes, and a
    signature value that was not percent-encoded at all (base64 never contains ``%`` or ``,``).
    A missing algorithm means RSA256, AlipayHK's default.
    """
    parts: dict[str, str] = {}
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep or not key.strip():
            raise SignatureHeaderError("Signature header parts must be key=value")
        parts[key.strip().lower()] = val.strip()
    encoded = parts.get("signature")
    if not encoded:
        raise SignatureHeaderError("Signature header has no signature value")
    try:
        raw = base64.b64decode(unquote(encoded), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureHeaderError("Signature header's signature is not base64") from None
    if not raw:
        raise SignatureHeaderError("Signature header's signature is empty")
    return SignatureHeader(
        algorithm=(parts.get("algorithm") or RSA256).upper(),
        key_version=parts.get("keyversion") or None,
        signature=raw,
    )


def sign_request(
    private_key: rsa.RSAPrivateKey,
    client_id: str,
    key_version: str,
    path: str,
    body: bytes,
    now: datetime | None = None,
) -> dict[str, str]:
    """Headers for one attempt: a fresh Request-Time and its signature over the unchanged body."""
    request_time = timestamp(now)
    content = signing_content("POST", path, client_id, request_time, body)
    return {
        "Content-Type": "application/json; charset=UTF-8",
        "Client-Id": client_id,
        "Request-Time": request_time,
        "Signature": format_signature_header(sign(private_key, content), key_version),
    }
