"""AlipayHK answers: result codes, the ``resultInfo`` body, and the signed response headers."""

from __future__ import annotations

import uuid
from enum import Enum

from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget import UPDATE_BUDGET_PATH
from ipass_budget.models import canonical_json
from ipass_budget.outcome import ResultInfo
from ipass_budget.signing import format_signature_header, sign, signing_content, timestamp
from ipass_sandbox.exchange import Reply

SANDBOX_KEY_VERSION = "1"
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"

# Result codes, spelled as AlipayHK does (PASS_TEMPLATE_HAS_NOT_EXIT included).
SUCCESS = "SUCCESS"
PARAM_ILLEGAL = "PARAM_ILLEGAL"
INVALID_CLIENT = "INVALID_CLIENT"
INVALID_SIGNATURE = "INVALID_SIGNATURE"
KEY_NOT_FOUND = "KEY_NOT_FOUND"
MEDIA_TYPE_NOT_ACCEPTABLE = "MEDIA_TYPE_NOT_ACCEPTABLE"
METHOD_NOT_SUPPORTED = "METHOD_NOT_SUPPORTED"
PASS_TEMPLATE_HAS_NOT_EXIT = "PASS_TEMPLATE_HAS_NOT_EXIT"  # noqa: S105  # nosec B105  # a result code, not a secret
PASS_TEMPLATE_STATUS_ILLEGAL = "PASS_TEMPLATE_STATUS_ILLEGAL"  # noqa: S105  # nosec B105  # a result code
REPEAT_REQ_INCONSISTENT = "REPEAT_REQ_INCONSISTENT"
UNKNOWN_EXCEPTION = "UNKNOWN_EXCEPTION"
REQUEST_TRAFFIC_EXCEED_LIMIT = "REQUEST_TRAFFIC_EXCEED_LIMIT"


def success() -> ResultInfo:
    return ResultInfo("S", SUCCESS, "Success")


def failure(code: str, message: str) -> ResultInfo:
    return ResultInfo("F", code, message)


def unknown(code: str, message: str) -> ResultInfo:
    return ResultInfo("U", code, message)


def result_body(info: ResultInfo) -> bytes:
    return canonical_json({"resultInfo": info.as_dict()})


class Signing(Enum):
    """How an answer carries (or fails to carry) its signature; all but SIGNED are injected faults."""

    SIGNED = "signed"
    CORRUPT = "corrupt"  # a well-formed signature that does not verify
    UNSIGNED = "unsigned"  # neither Signature nor Response-Time
    SIGNATURE_ONLY = "signature-only"  # Signature without Response-Time


class AnswerSigner:
    """Signs answers with the sandbox's private key, as AlipayHK signs its own."""

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self._private_key = private_key

    def answer(self, client_id: str | None, body: bytes, signing: Signing = Signing.SIGNED) -> Reply:
        """HTTP 200 with ``body``; signed over the request's Client-Id, so unsigned when it had none."""
        headers = [("Content-Type", JSON_CONTENT_TYPE), ("Tracer-Id", new_tracer_id())]
        if client_id is not None:
            headers.append(("Client-Id", client_id))
            headers.extend(self._signature_headers(client_id, body, signing))
        return Reply(200, body, tuple(headers))

    def _signature_headers(self, client_id: str, body: bytes, signing: Signing) -> list[tuple[str, str]]:
        if signing is Signing.UNSIGNED:
            return []
        response_time = timestamp()
        signed_body = body + b" " if signing is Signing.CORRUPT else body
        content = signing_content("POST", UPDATE_BUDGET_PATH, client_id, response_time, signed_body)
        signature = ("Signature", format_signature_header(sign(self._private_key, content), SANDBOX_KEY_VERSION))
        if signing is Signing.SIGNATURE_ONLY:
            return [signature]
        return [("Response-Time", response_time), signature]


def new_tracer_id() -> str:
    return "sandbox" + uuid.uuid4().hex


def plain_error(status: int, text: str) -> Reply:
    """A non-JSON gateway error page, as a load balancer in front of AlipayHK might send."""
    return Reply(status, text.encode("ascii"), (("Content-Type", "text/plain"), ("Tracer-Id", new_tracer_id())))
