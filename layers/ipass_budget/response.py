"""Reading an AlipayHK answer: signature policy (alipay-protocol.md 4.3) and result extraction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from requests.structures import CaseInsensitiveDict

from ipass_budget.outcome import AttemptResult, Disposition, Reason, ResultInfo, classify
from ipass_budget.signing import RSA256, SignatureHeaderError, parse_signature_header, signing_content, verify


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that also works on plain dicts."""
    value = headers.get(name)
    # requests' header map is already case-insensitive: scanning it again would only cost time.
    if value is None and not isinstance(headers, CaseInsensitiveDict):
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def read_result_info(body: bytes) -> ResultInfo | None:
    """``resultInfo`` (falling back to ``result``), with ``resultMsg`` or ``resultMessage``."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # deeply nested JSON raises RecursionError
        return None
    if not isinstance(data, dict):
        return None
    info: Any = data.get("resultInfo", data.get("result"))
    if not isinstance(info, dict):
        return None
    status, code = info.get("resultStatus"), info.get("resultCode")
    if not isinstance(status, str) or not isinstance(code, str):
        return None
    message = info.get("resultMsg", info.get("resultMessage", ""))
    return ResultInfo(status, code, message if isinstance(message, str) else str(message))


def evaluate_response(
    *,
    http_status: int,
    headers: Mapping[str, str],
    body: bytes,
    path: str,
    client_id: str,
    alipay_public_key: rsa.RSAPublicKey,
) -> AttemptResult:
    """Classify one HTTP answer. Never SUCCEEDED unless its signature verified."""
    tracer_id = _header(headers, "Tracer-Id")

    def unknown(reason: Reason, detail: str, info: ResultInfo | None = None) -> AttemptResult:
        return AttemptResult(
            Disposition.UNKNOWN, reason, info, tracer_id=tracer_id, http_status=http_status, detail=detail
        )

    if http_status != 200:
        return unknown(Reason.HTTP_STATUS, f"AlipayHK answered HTTP {http_status}")
    if _header(headers, "Encrypt"):
        return unknown(Reason.MALFORMED, "AlipayHK sent an encrypted answer; encryption is not supported")

    signature_value = _header(headers, "Signature")
    response_time = _header(headers, "Response-Time")
    if bool(signature_value) != bool(response_time):
        return unknown(Reason.PARTLY_SIGNED, "answer carries only one of Signature and Response-Time")
    signed = bool(signature_value and response_time)
    if signature_value and response_time:
        problem = _signature_problem(signature_value, response_time, headers, body, path, client_id, alipay_public_key)
        if problem:
            return unknown(Reason.BAD_SIGNATURE, problem)

    info = read_result_info(body)
    if info is None:
        return unknown(Reason.MALFORMED, "answer has no readable resultInfo")
    disposition, reason = classify(info)
    if not signed and disposition is Disposition.SUCCEEDED:
        return unknown(Reason.UNSIGNED_SUCCESS, "success answer is not signed", info)
    return AttemptResult(
        disposition,
        reason,
        info,
        verified=signed,
        tracer_id=tracer_id,
        http_status=http_status,
        detail="" if signed else "answer is not signed",
    )


def _signature_problem(
    signature_value: str,
    response_time: str,
    headers: Mapping[str, str],
    body: bytes,
    path: str,
    client_id: str,
    alipay_public_key: rsa.RSAPublicKey,
) -> str | None:
    try:
        parsed = parse_signature_header(signature_value)
    except SignatureHeaderError as exc:
        return str(exc)
    if parsed.algorithm != RSA256:
        return f"answer is signed with unsupported algorithm {parsed.algorithm[:20]}"
    answered_client = _header(headers, "Client-Id")
    if answered_client is not None and answered_client != client_id:
        return "answer names another Client-Id"
    content = signing_content("POST", path, client_id, response_time, body)
    if not verify(alipay_public_key, content, parsed.signature):
        return "answer signature does not verify with AlipayHK's public key"
    return None
