"""Property-based tests of ipass_budget.signing: round trips and tamper detection."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ipass_budget import UPDATE_BUDGET_PATH
from ipass_budget.signing import (
    RSA256,
    SignatureHeaderError,
    format_signature_header,
    parse_signature_header,
    parse_timestamp,
    sign,
    sign_request,
    signing_content,
    timestamp,
    verify,
)

RSA = settings.get_profile("rsa")

tokens = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64)
bodies = st.binary(max_size=2048) | st.text(max_size=300).map(str.encode)
# Realistic offsets: whole minutes within +-23:59.
offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets)
key_versions = st.integers(min_value=0, max_value=10**6).map(str)
signatures = st.binary(min_size=1, max_size=512)


@RSA
@given(body=bodies, client_id=tokens, key_version=key_versions, now=moments)
def test_sign_request_round_trips_through_verification(
    partner_key: rsa.RSAPrivateKey, body: bytes, client_id: str, key_version: str, now: datetime
) -> None:
    headers = sign_request(partner_key, client_id, key_version, UPDATE_BUDGET_PATH, body, now=now)
    assert headers["Client-Id"] == client_id
    request_time = headers["Request-Time"]
    assert parse_timestamp(request_time) == now.replace(microsecond=0)
    parsed = parse_signature_header(headers["Signature"])
    assert (parsed.algorithm, parsed.key_version) == (RSA256, key_version)
    content = signing_content("POST", UPDATE_BUDGET_PATH, client_id, request_time, body)
    assert verify(partner_key.public_key(), content, parsed.signature)


@st.composite
def content_and_change(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A signed content and a different content: one byte flipped, inserted, removed, or truncated."""
    body = draw(bodies)
    content = signing_content("POST", UPDATE_BUDGET_PATH, draw(tokens), timestamp(draw(moments)), body)
    kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "append"]))
    i = draw(st.integers(min_value=0, max_value=len(content) - 1))
    if kind == "flip":
        bit = draw(st.integers(min_value=0, max_value=7))
        changed = content[:i] + bytes([content[i] ^ (1 << bit)]) + content[i + 1 :]
    elif kind == "insert":
        changed = content[:i] + draw(st.binary(min_size=1, max_size=4)) + content[i:]
    elif kind == "delete":
        changed = content[:i] + content[i + 1 :]
    elif kind == "truncate":
        changed = content[:i]
    else:
        changed = content + draw(st.sampled_from([b"\n", b"\r\n", b" ", b"\x00", b"}"]))
    return content, changed


@RSA
@given(pair=content_and_change())
def test_any_change_to_the_content_breaks_verification(
    partner_key: rsa.RSAPrivateKey, pair: tuple[bytes, bytes]
) -> None:
    content, changed = pair
    assert changed != content
    signature = base64.b64decode(sign(partner_key, content))
    assert verify(partner_key.public_key(), content, signature)
    assert not verify(partner_key.public_key(), changed, signature)


@RSA
@given(content=bodies, bit=st.integers(min_value=0, max_value=2047))
def test_any_change_to_the_signature_breaks_verification(
    partner_key: rsa.RSAPrivateKey, content: bytes, bit: int
) -> None:
    signature = bytearray(base64.b64decode(sign(partner_key, content)))
    signature[bit // 8] ^= 1 << (bit % 8)
    assert not verify(partner_key.public_key(), content, bytes(signature))


@RSA
@given(content=bodies)
def test_signatures_are_deterministic_344_char_base64(partner_key: rsa.RSAPrivateKey, content: bytes) -> None:
    first = sign(partner_key, content)
    assert sign(partner_key, content) == first
    assert re.fullmatch(r"[A-Za-z0-9+/]{342}==", first)


# --- Signature header format/parse ------------------------------------------------------------------


@given(raw=signatures, key_version=key_versions)
def test_signature_header_round_trips(raw: bytes, key_version: str) -> None:
    header = format_signature_header(base64.b64encode(raw).decode(), key_version)
    assert " " not in header
    assert re.fullmatch(r"algorithm=RSA256,keyVersion=\d+,signature=[A-Za-z0-9%]+", header)
    parsed = parse_signature_header(header)
    assert (parsed.algorithm, parsed.key_version, parsed.signature) == (RSA256, key_version, raw)


def _random_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.swapcase() if f else c for c, f in zip(text, flips, strict=True))


@st.composite
def tolerated_headers(draw: st.DrawFn) -> tuple[str, bytes, str]:
    """Signature headers as other SDKs and gateways write them; returns (header, raw, keyVersion)."""
    raw = draw(signatures)
    key_version = draw(key_versions)
    b64 = base64.b64encode(raw).decode()
    encoding = draw(st.sampled_from(["upper", "lower", "mixed", "none"]))
    if encoding == "none":
        value = b64  # not percent-encoded at all
    else:
        value = quote(b64, safe="")
        if encoding != "upper":
            value = re.sub(
                "%[0-9A-F]{2}",
                lambda m: m.group(0).lower() if encoding == "lower" or draw(st.booleans()) else m.group(0),
                value,
            )
    parts = [
        f"{_random_case(draw, 'algorithm')}={draw(st.sampled_from(['RSA256', 'rsa256', 'Rsa256']))}",
        f"{_random_case(draw, 'keyVersion')}={key_version}",
        f"{_random_case(draw, 'signature')}={value}",
    ]
    parts = draw(st.permutations(parts))
    separator = draw(st.sampled_from([",", ", ", " , ", ",  ", ",\t"]))
    header = draw(st.sampled_from(["", " "])) + separator.join(parts) + draw(st.sampled_from(["", " "]))
    return header, raw, key_version


@given(case=tolerated_headers())
@example(case=("algorithm=RSA256, keyVersion=1, signature=ab%2b%2fcd%3d%3d", base64.b64decode("ab+/cd=="), "1"))
@example(case=("Algorithm=RSA256,KEYVERSION=2,Signature=ab+/cd==", base64.b64decode("ab+/cd=="), "2"))
def test_signature_header_parse_tolerates_other_writers(case: tuple[str, bytes, str]) -> None:
    header, raw, key_version = case
    parsed = parse_signature_header(header)
    assert (parsed.algorithm, parsed.key_version, parsed.signature) == (RSA256, key_version, raw)


@given(raw=signatures)
def test_signature_header_without_algorithm_means_rsa256(raw: bytes) -> None:
    parsed = parse_signature_header("signature=" + quote(base64.b64encode(raw).decode(), safe=""))
    assert (parsed.algorithm, parsed.key_version, parsed.signature) == (RSA256, None, raw)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "algorithm=RSA256,keyVersion=1",
        "algorithm=RSA256,keyVersion=1,signature=",
        "algorithm=RSA256,keyVersion=1,signature",
        "algorithm=RSA256,,signature=YWJj",
        "=x,signature=YWJj",
        "algorithm=RSA256,keyVersion=1,signature=not base64!",
        "algorithm=RSA256,keyVersion=1,signature=YWJ",  # bad padding
        "algorithm=RSA256,keyVersion=1,signature=%3D%3D%3D%3D",  # decodes to nothing
    ],
)
def test_unreadable_signature_headers_are_refused(header: str) -> None:
    with pytest.raises(SignatureHeaderError):
        parse_signature_header(header)


@given(raw=signatures)
def test_signature_header_repr_never_shows_the_signature(raw: bytes) -> None:
    b64 = base64.b64encode(raw).decode()
    parsed = parse_signature_header(format_signature_header(b64, "1"))
    assert b64 not in repr(parsed)
    assert repr(raw) not in repr(parsed)


# --- timestamps -------------------------------------------------------------------------------------


@given(now=moments)
def test_timestamp_round_trips_to_the_second(now: datetime) -> None:
    text = timestamp(now)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", text)
    assert parse_timestamp(text) == now.replace(microsecond=0)


def test_timestamp_defaults_to_utc_now_and_needs_an_aware_time() -> None:
    assert timestamp().endswith("+00:00")
    with pytest.raises(ValueError, match="aware"):
        timestamp(datetime(2024, 5, 22, 6, 42, 21))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-22T06:42:21+05:30", datetime(2024, 5, 22, 1, 12, 21, tzinfo=UTC)),
        ("2023-12-18T02:33:31Z", datetime(2023, 12, 18, 2, 33, 31, tzinfo=UTC)),
        ("2023-12-18t02:33:31z", datetime(2023, 12, 18, 2, 33, 31, tzinfo=UTC)),
        ("2024-05-22T06:42:21.123+00:00", datetime(2024, 5, 22, 6, 42, 21, 123000, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_accepts_iso8601_with_a_zone(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("text", ["2024-05-22T06:42:21", "2024-05-22", "1716360141000", "yesterday", ""])
def test_parse_timestamp_refuses_times_without_a_zone(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message differs by cause
        parse_timestamp(text)
