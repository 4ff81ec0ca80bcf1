"""The classification table: outcome.classify and response.evaluate_response, row by row."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import example, given
from hypothesis import strategies as st

from ipass_budget import UPDATE_BUDGET_PATH
from ipass_budget.outcome import (
    REJECTED_BEFORE_PROCESSING,
    AttemptResult,
    Disposition,
    Outcome,
    Reason,
    ResultInfo,
    classify,
)
from ipass_budget.response import evaluate_response, read_result_info

CLIENT_ID = "4Q5Y8W0WSG45P907917"
SUCCEEDED, FAILED, REJECTED, UNKNOWN = (
    Disposition.SUCCEEDED,
    Disposition.FAILED,
    Disposition.REJECTED,
    Disposition.UNKNOWN,
)
GATEWAY_REJECTIONS = [
    "INVALID_SIGNATURE",
    "KEY_NOT_FOUND",
    "INVALID_CLIENT",
    "ACCESS_DENIED",
    "INVALID_API",
    "METHOD_NOT_SUPPORTED",
    "MEDIA_TYPE_NOT_ACCEPTABLE",
]
BUSINESS_FAILURES = [
    "PARAM_ILLEGAL",
    "PASS_TEMPLATE_HAS_NOT_EXIT",
    "PASS_TEMPLATE_STATUS_ILLEGAL",
    "PROCESS_FAIL",
    "SOME_NEW_CODE",
]


# --- classify (a trusted resultInfo) ----------------------------------------------------------------

CLASSIFY_TABLE = [
    ("S", "SUCCESS", SUCCEEDED, Reason.ANSWERED),
    ("s", "success", SUCCEEDED, Reason.ANSWERED),
    *[("F", code, FAILED, Reason.ANSWERED) for code in BUSINESS_FAILURES],
    *[("F", code, REJECTED, Reason.ANSWERED) for code in GATEWAY_REJECTIONS],
    ("f", "invalid_signature", REJECTED, Reason.ANSWERED),
    ("U", "UNKNOWN_EXCEPTION", UNKNOWN, Reason.STATUS_UNKNOWN),
    ("U", "SYSTEM_ERROR", UNKNOWN, Reason.STATUS_UNKNOWN),
    ("U", "SUCCESS", UNKNOWN, Reason.STATUS_UNKNOWN),
    ("U", "REQUEST_TRAFFIC_EXCEED_LIMIT", UNKNOWN, Reason.RATE_LIMITED),
    ("F", "REQUEST_TRAFFIC_EXCEED_LIMIT", UNKNOWN, Reason.RATE_LIMITED),
    ("S", "REQUEST_TRAFFIC_EXCEED_LIMIT", UNKNOWN, Reason.RATE_LIMITED),
    ("F", "UNKNOWN_EXCEPTION", UNKNOWN, Reason.STATUS_UNKNOWN),
    ("S", "UNKNOWN_EXCEPTION", UNKNOWN, Reason.STATUS_UNKNOWN),
    ("", "SUCCESS", UNKNOWN, Reason.MALFORMED),
    ("X", "SUCCESS", UNKNOWN, Reason.MALFORMED),
    ("SUCCESS", "SUCCESS", UNKNOWN, Reason.MALFORMED),
]


@pytest.mark.parametrize(("status", "code", "disposition", "reason"), CLASSIFY_TABLE)
def test_classify(status: str, code: str, disposition: Disposition, reason: Reason) -> None:
    assert classify(ResultInfo(status, code, "msg")) == (disposition, reason)


@given(status=st.text(max_size=3), code=st.text(max_size=30))
def test_classify_is_total_and_only_s_succeeds(status: str, code: str) -> None:
    disposition, reason = classify(ResultInfo(status, code, ""))
    assert (disposition is SUCCEEDED) == (
        status.upper() == "S" and code.upper() not in ("REQUEST_TRAFFIC_EXCEED_LIMIT", "UNKNOWN_EXCEPTION")
    )
    assert (disposition is UNKNOWN) == (reason is not Reason.ANSWERED)


def test_dispositions_map_to_caller_outcomes() -> None:
    assert {d: (d.outcome, d.final) for d in Disposition} == {
        SUCCEEDED: (Outcome.SUCCEEDED, True),
        FAILED: (Outcome.FAILED, True),
        REJECTED: (Outcome.FAILED, False),  # reported as FAILED, but the same requestId may be retried
        UNKNOWN: (Outcome.UNKNOWN, False),
    }


def test_every_documented_gateway_rejection_is_listed() -> None:
    assert set(GATEWAY_REJECTIONS) <= REJECTED_BEFORE_PROCESSING
    assert not set(BUSINESS_FAILURES) & REJECTED_BEFORE_PROCESSING


# --- evaluate_response (an HTTP answer) -------------------------------------------------------------


def body_of(status: str, code: str, message: str = "message") -> bytes:
    return b'{"resultInfo":{"resultCode":"%s","resultStatus":"%s","resultMsg":"%s"}}' % (
        code.encode(),
        status.encode(),
        message.encode(),
    )


@dataclass(frozen=True)
class Row:
    """One answer (built by the conftest ``answer`` fixture from ``body`` and ``options``) and its verdict."""

    body: bytes
    disposition: Disposition
    reason: Reason
    verified: bool
    options: dict[str, Any] = field(default_factory=dict)
    detail: str = ""  # a fragment the AttemptResult detail must contain


ROWS: dict[str, Row] = {
    "S verified": Row(body_of("S", "SUCCESS"), SUCCEEDED, Reason.ANSWERED, True),
    **{f"F {code}": Row(body_of("F", code), FAILED, Reason.ANSWERED, True) for code in BUSINESS_FAILURES},
    **{f"F {code}": Row(body_of("F", code), REJECTED, Reason.ANSWERED, True) for code in GATEWAY_REJECTIONS},
    "U UNKNOWN_EXCEPTION": Row(body_of("U", "UNKNOWN_EXCEPTION"), UNKNOWN, Reason.STATUS_UNKNOWN, True),
    "U other code": Row(body_of("U", "SYSTEM_ERROR"), UNKNOWN, Reason.STATUS_UNKNOWN, True),
    "REQUEST_TRAFFIC_EXCEED_LIMIT": Row(
        body_of("U", "REQUEST_TRAFFIC_EXCEED_LIMIT"), UNKNOWN, Reason.RATE_LIMITED, True
    ),
    "REQUEST_TRAFFIC_EXCEED_LIMIT as F": Row(
        body_of("F", "REQUEST_TRAFFIC_EXCEED_LIMIT"), UNKNOWN, Reason.RATE_LIMITED, True
    ),
    "HTTP 500": Row(body_of("S", "SUCCESS"), UNKNOWN, Reason.HTTP_STATUS, False, {"status": 500}, "HTTP 500"),
    "HTTP 502 unsigned": Row(
        b"<html>bad gateway</html>", UNKNOWN, Reason.HTTP_STATUS, False, {"status": 502, "signed": False}
    ),
    "HTTP 404": Row(body_of("F", "INVALID_API"), UNKNOWN, Reason.HTTP_STATUS, False, {"status": 404}),
    "HTTP 204": Row(b"", UNKNOWN, Reason.HTTP_STATUS, False, {"status": 204}),
    "malformed JSON": Row(b'{"resultInfo":{"resultCode":"SUCC', UNKNOWN, Reason.MALFORMED, False),
    "not UTF-8": Row(b"\xff\xfe\x00garbage", UNKNOWN, Reason.MALFORMED, False),
    "empty body": Row(b"", UNKNOWN, Reason.MALFORMED, False),
    "JSON array": Row(b"[1,2]", UNKNOWN, Reason.MALFORMED, False),
    "missing resultInfo": Row(b'{"success":true}', UNKNOWN, Reason.MALFORMED, False, detail="resultInfo"),
    "resultInfo not an object": Row(b'{"resultInfo":"S"}', UNKNOWN, Reason.MALFORMED, False),
    "resultInfo null": Row(b'{"resultInfo":null}', UNKNOWN, Reason.MALFORMED, False),
    "resultStatus missing": Row(b'{"resultInfo":{"resultCode":"SUCCESS"}}', UNKNOWN, Reason.MALFORMED, False),
    "resultCode not a string": Row(
        b'{"resultInfo":{"resultCode":200,"resultStatus":"S"}}', UNKNOWN, Reason.MALFORMED, False
    ),
    "result + resultMessage fallback": Row(
        b'{"result":{"resultCode":"SUCCESS","resultStatus":"S","resultMessage":"fine"}}',
        SUCCEEDED,
        Reason.ANSWERED,
        True,
    ),
    "result fallback, F": Row(
        b'{"result":{"resultCode":"PARAM_ILLEGAL","resultStatus":"F","resultMessage":"bad"}}',
        FAILED,
        Reason.ANSWERED,
        True,
    ),
    "unsigned S": Row(body_of("S", "SUCCESS"), UNKNOWN, Reason.UNSIGNED_SUCCESS, False, {"signed": False}),
    "Signature header only": Row(
        body_of("S", "SUCCESS"), UNKNOWN, Reason.PARTLY_SIGNED, False, {"drop": "Response-Time"}
    ),
    "Response-Time header only": Row(
        body_of("S", "SUCCESS"), UNKNOWN, Reason.PARTLY_SIGNED, False, {"drop": "Signature"}
    ),
    "one header only, F": Row(
        body_of("F", "PARAM_ILLEGAL"), UNKNOWN, Reason.PARTLY_SIGNED, False, {"drop": "Signature"}
    ),
    "bad signature (body changed)": Row(
        body_of("S", "SUCCESS"), UNKNOWN, Reason.BAD_SIGNATURE, False, {"tamper": True}, "does not verify"
    ),
    "bad signature on F": Row(body_of("F", "PARAM_ILLEGAL"), UNKNOWN, Reason.BAD_SIGNATURE, False, {"tamper": True}),
    "Response-Time other than signed": Row(
        body_of("S", "SUCCESS"), UNKNOWN, Reason.BAD_SIGNATURE, False, {"header_time": "2024-05-22T09:12:22Z"}
    ),
    "signature by another key": Row(
        body_of("S", "SUCCESS"), UNKNOWN, Reason.BAD_SIGNATURE, False, {"other_key": True}, "does not verify"
    ),
    "answer names another Client-Id": Row(
        body_of("S", "SUCCESS"), UNKNOWN, Reason.BAD_SIGNATURE, False, {"client_id": "OTHER-CLIENT"}, "Client-Id"
    ),
    "ECC224 algorithm": Row(
        body_of("S", "SUCCESS"), UNKNOWN, Reason.BAD_SIGNATURE, False, {"algorithm": "ECC224"}, "ECC224"
    ),
    "unreadable Signature header": Row(
        body_of("S", "SUCCESS"),
        UNKNOWN,
        Reason.BAD_SIGNATURE,
        False,
        {"extra": {"Signature": "algorithm=RSA256,keyVersion=1"}},
        "no signature",
    ),
    "Encrypt header": Row(
        body_of("S", "SUCCESS"),
        UNKNOWN,
        Reason.MALFORMED,
        False,
        {"extra": {"Encrypt": "algorithm=RSA_AES,keyVersion=1,symmetricKey=abc"}},
        "encrypt",
    ),
    "unsigned F accepted unverified": Row(
        body_of("F", "PARAM_ILLEGAL"), FAILED, Reason.ANSWERED, False, {"signed": False}
    ),
    "unsigned F rejection accepted unverified": Row(
        body_of("F", "INVALID_SIGNATURE"), REJECTED, Reason.ANSWERED, False, {"signed": False}
    ),
    "unsigned U accepted unverified": Row(
        body_of("U", "UNKNOWN_EXCEPTION"), UNKNOWN, Reason.STATUS_UNKNOWN, False, {"signed": False}
    ),
    "unsigned rate limit": Row(
        body_of("F", "REQUEST_TRAFFIC_EXCEED_LIMIT"), UNKNOWN, Reason.RATE_LIMITED, False, {"signed": False}
    ),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_evaluate_response(
    name: str,
    answer: Callable[..., requests.Response],
    partner_key: rsa.RSAPrivateKey,
    gateway_public_key: rsa.RSAPublicKey,
) -> None:
    row = ROWS[name]
    options = dict(row.options)
    drop = options.pop("drop", None)
    tamper = options.pop("tamper", False)
    if options.pop("other_key", False):
        options["key"] = partner_key
    response = answer(row.body, **options)
    if drop:
        del response.headers[drop]
    body = response.content + b" " if tamper else response.content
    result = evaluate_response(
        http_status=response.status_code,
        headers=response.headers,
        body=body,
        path=UPDATE_BUDGET_PATH,
        client_id=CLIENT_ID,
        alipay_public_key=gateway_public_key,
    )
    assert (result.disposition, result.reason, result.verified) == (row.disposition, row.reason, row.verified)
    assert result.http_status == response.status_code
    assert result.tracer_id == "trace-0001"
    assert row.detail.lower() in result.detail.lower()
    assert result.may_have_been_sent
    if result.disposition is UNKNOWN:
        assert result.reason is not Reason.ANSWERED
    if result.disposition is not UNKNOWN or result.reason in (Reason.STATUS_UNKNOWN, Reason.RATE_LIMITED):
        assert result.result_info is not None  # callers report what AlipayHK said
    if result.verified:
        assert result.detail == ""
    elif result.disposition is not UNKNOWN:
        assert "not signed" in result.detail


def test_lowercase_response_header_names_are_found(
    answer: Callable[..., requests.Response], gateway_public_key: rsa.RSAPublicKey
) -> None:
    response = answer(body_of("S", "SUCCESS"))
    lowered = {k.lower(): v for k, v in response.headers.items()}  # a plain dict, as the gateway emits
    result = evaluate_response(
        http_status=200,
        headers=lowered,
        body=response.content,
        path=UPDATE_BUDGET_PATH,
        client_id=CLIENT_ID,
        alipay_public_key=gateway_public_key,
    )
    assert (result.disposition, result.verified, result.tracer_id) == (SUCCEEDED, True, "trace-0001")


def test_verification_uses_the_configured_client_id(
    answer: Callable[..., requests.Response], gateway_public_key: rsa.RSAPublicKey
) -> None:
    # Signed for OTHER-CLIENT but with no Client-Id header: the configured id is what is verified.
    response = answer(body_of("S", "SUCCESS"), client_id="OTHER-CLIENT")
    del response.headers["Client-Id"]
    result = evaluate_response(
        http_status=200,
        headers=response.headers,
        body=response.content,
        path=UPDATE_BUDGET_PATH,
        client_id=CLIENT_ID,
        alipay_public_key=gateway_public_key,
    )
    assert (result.disposition, result.reason) == (UNKNOWN, Reason.BAD_SIGNATURE)


def test_verification_uses_the_request_path(
    answer: Callable[..., requests.Response], gateway_public_key: rsa.RSAPublicKey
) -> None:
    response = answer(body_of("S", "SUCCESS"))
    result = evaluate_response(
        http_status=200,
        headers=response.headers,
        body=response.content,
        path=UPDATE_BUDGET_PATH + "/",
        client_id=CLIENT_ID,
        alipay_public_key=gateway_public_key,
    )
    assert (result.disposition, result.reason) == (UNKNOWN, Reason.BAD_SIGNATURE)


def test_result_info_reading_prefers_result_info_and_result_msg() -> None:
    both = (
        b'{"result":{"resultCode":"X","resultStatus":"F"},"resultInfo":{"resultCode":"SUCCESS","resultStatus":"S",'
        b'"resultMsg":"a","resultMessage":"b"}}'
    )
    assert read_result_info(both) == ResultInfo("S", "SUCCESS", "a")
    assert read_result_info(b'{"resultInfo":{"resultCode":"C","resultStatus":"F"}}') == ResultInfo("F", "C", "")
    assert read_result_info(b'{"resultInfo":{"resultCode":"C","resultStatus":"F","resultMsg":7}}') == ResultInfo(
        "F", "C", "7"
    )
    info = ResultInfo("S", "SUCCESS", "ok")
    assert ResultInfo.from_dict(info.as_dict()) == info


def test_attempt_results_that_never_left_say_so() -> None:
    assert not AttemptResult(UNKNOWN, Reason.NOT_SENT).may_have_been_sent
    assert not AttemptResult(UNKNOWN, Reason.NO_TIME_LEFT).may_have_been_sent
    assert AttemptResult(UNKNOWN, Reason.TIMEOUT).may_have_been_sent


# --- evaluate_response is total: any answer is classified, never raised ------------------------------

HEADER_NAMES = ["Signature", "signature", "Response-Time", "response-time", "Client-Id", "Encrypt", "Tracer-Id"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=8,
)
answer_bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda status, code, msg, key: json.dumps(
            {key: {"resultStatus": status, "resultCode": code, "resultMsg": msg}}
        ),
        st.sampled_from(["S", "F", "U", "s", "", "X"]) | st.integers(),
        st.sampled_from(["SUCCESS", "PARAM_ILLEGAL", "INVALID_SIGNATURE", "UNKNOWN_EXCEPTION"]) | st.none(),
        json_values,
        st.sampled_from(["resultInfo", "result", "other"]),
    ).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(min_value=1, max_value=200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(min_value=1, max_value=200_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
)
header_values = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60),
    st.sampled_from(
        [
            "",
            "algorithm=RSA256,keyVersion=1,signature=ab%2B%2Fcd%3D%3D",
            "algorithm=ECC224,signature=YWJj",
            "signature=%zz",
            "signature=\u00e9\u00e9",
            "2024-05-22T09:12:21Z",
            CLIENT_ID,
        ]
    ),
)


@given(
    status=st.sampled_from([200, 200, 200, 500, 429]),
    headers=st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=5),
    body=answer_bodies,
)
@example(status=200, headers={}, body=b"[" * 100_000 + b"]" * 100_000)
@example(status=200, headers={}, body=b'{"resultInfo":' * 50_000 + b"1" + b"}" * 50_000)
def test_evaluate_response_classifies_any_answer_and_never_succeeds_unverified(
    gateway_public_key: rsa.RSAPublicKey, status: int, headers: dict[str, str], body: bytes
) -> None:
    result = evaluate_response(
        http_status=status,
        headers=headers,
        body=body,
        path=UPDATE_BUDGET_PATH,
        client_id=CLIENT_ID,
        alipay_public_key=gateway_public_key,
    )
    # Nothing here carries a valid gateway signature, so nothing may count as verified or succeeded.
    assert not result.verified
    assert result.disposition is not SUCCEEDED
    assert (result.disposition is UNKNOWN) == (result.reason is not Reason.ANSWERED)
