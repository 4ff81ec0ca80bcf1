"""``POST /api/open/alipay/v1/ipass/template/manage/updateBudget`` as AlipayHK's gateway serves it."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget.outcome import ResultInfo
from ipass_budget.signing import RSA256, SignatureHeaderError, parse_signature_header, parse_timestamp, signing_content
from ipass_budget.signing import verify as verify_signature
from ipass_sandbox.answers import (
    INVALID_CLIENT,
    INVALID_SIGNATURE,
    KEY_NOT_FOUND,
    MEDIA_TYPE_NOT_ACCEPTABLE,
    METHOD_NOT_SUPPORTED,
    PARAM_ILLEGAL,
    REQUEST_TRAFFIC_EXCEED_LIMIT,
    UNKNOWN_EXCEPTION,
    AnswerSigner,
    Signing,
    failure,
    plain_error,
    result_body,
    unknown,
)
from ipass_sandbox.budget import ParamIllegal, parse_budget_request, peek_request_id
from ipass_sandbox.exchange import Reply, Request
from ipass_sandbox.faults import Fault, FaultKind
from ipass_sandbox.state import SandboxState

# How a fault that lets the budget logic run changes the (signed) answer.
_SIGNING_FAULTS = {
    FaultKind.CORRUPT_SIGNATURE: Signing.CORRUPT,
    FaultKind.UNSIGNED_SUCCESS: Signing.UNSIGNED,
    FaultKind.PARTLY_SIGNED: Signing.SIGNATURE_ONLY,
}


class UpdateBudgetEndpoint:
    def __init__(self, state: SandboxState, signer: AnswerSigner) -> None:
        self._state = state
        self._signer = signer

    def handle(self, request: Request) -> Reply:
        self._state.count_api_request()
        client_id = request.header("Client-Id") or None
        if request.method != "POST":
            message = f"HTTP method {request.method} is not supported; use POST"
            return self._answer(client_id, failure(METHOD_NOT_SUPPORTED, message))
        if client_id is None:
            return self._answer(None, failure(INVALID_CLIENT, "Client-Id header is missing"))
        rejection = self._authenticate(request, client_id)
        if rejection is not None:
            # Gateway rejections are never remembered: the same requestId may be sent again once fixed.
            return self._answer(client_id, rejection)

        request_id = peek_request_id(request.body)
        fault = self._state.record_arrival(request_id) if request_id is not None else None
        if fault is not None and not fault.kind.applies:
            return self._before_apply(client_id, fault)
        body = self._run_budget_logic(client_id, request.body)
        if fault is None:
            return self._signer.answer(client_id, body)
        return self._after_apply(client_id, fault, body)

    def _answer(self, client_id: str | None, info: ResultInfo) -> Reply:
        return self._signer.answer(client_id, result_body(info))

    def _authenticate(self, request: Request, client_id: str) -> ResultInfo | None:
        """The gateway checks, in AlipayHK's order; None when the request may reach the budget logic."""
        keys = self._state.client_keys(client_id)
        if keys is None:
            return failure(INVALID_CLIENT, f"Client-Id {client_id[:64]} is not registered")
        header = request.header("Signature")
        if not header:
            return failure(INVALID_SIGNATURE, "Signature header is missing")
        try:
            signature = parse_signature_header(header)
        except SignatureHeaderError as exc:
            return failure(INVALID_SIGNATURE, f"Signature header is unreadable: {exc}")
        if signature.algorithm != RSA256:
            return failure(INVALID_SIGNATURE, f"algorithm {signature.algorithm[:20]} is not supported; use RSA256")
        # AlipayHK: a missing keyVersion means the latest key configured for the Client-Id.
        key_version = signature.key_version or latest_key_version(keys)
        public_key = keys.get(key_version) if key_version is not None else None
        if public_key is None or key_version is None:
            shown = (key_version or "(latest)")[:20]
            return failure(KEY_NOT_FOUND, f"no public key with keyVersion {shown} is registered for this Client-Id")
        request_time = request.header("Request-Time")
        if not request_time:
            return failure(PARAM_ILLEGAL, "Request-Time header is missing")
        try:
            parse_timestamp(request_time)
        except ValueError:
            return failure(PARAM_ILLEGAL, "Request-Time must be an ISO-8601 date-time with a timezone")
        if not is_json_media_type(request.header("Content-Type")):
            return failure(MEDIA_TYPE_NOT_ACCEPTABLE, "Content-Type must be application/json; charset=UTF-8")
        return self._verify(public_key, request, client_id, request_time, signature.signature, key_version)

    @staticmethod
    def _verify(
        public_key: rsa.RSAPublicKey,
        request: Request,
        client_id: str,
        request_time: str,
        signature: bytes,
        key_version: str,
    ) -> ResultInfo | None:
        content = signing_content("POST", request.target, client_id, request_time, request.body)
        if verify_signature(public_key, content, signature):
            return None
        return failure(
            INVALID_SIGNATURE,
            f"signature does not verify with the public key registered for keyVersion {key_version}",
        )

    def _run_budget_logic(self, client_id: str, raw_body: bytes) -> bytes:
        try:
            update = parse_budget_request(raw_body)
        except ParamIllegal as exc:
            # Not remembered: a malformed body never reached the budget logic.
            return result_body(failure(PARAM_ILLEGAL, str(exc)))
        return self._state.update_budget(client_id, update)

    def _before_apply(self, client_id: str, fault: Fault) -> Reply:
        match fault.kind:
            case FaultKind.U_BEFORE_APPLY:
                return self._answer(client_id, unknown(UNKNOWN_EXCEPTION, "injected fault: unknown exception"))
            case FaultKind.TRAFFIC_LIMIT:
                return self._answer(
                    client_id, unknown(REQUEST_TRAFFIC_EXCEED_LIMIT, "injected fault: request traffic exceeds limit")
                )
            case FaultKind.HTTP_503_BEFORE_APPLY:
                return plain_error(503, "Service Unavailable")
            case _:  # DROP_BEFORE_APPLY
                return Reply(0, drop=True)

    def _after_apply(self, client_id: str, fault: Fault, body: bytes) -> Reply:
        match fault.kind:
            case FaultKind.U_AFTER_APPLY:
                return self._answer(client_id, unknown(UNKNOWN_EXCEPTION, "injected fault: unknown exception"))
            case FaultKind.HTTP_500_AFTER_APPLY:
                return plain_error(500, "Internal Server Error")
            case FaultKind.DROP_AFTER_APPLY:
                return Reply(0, drop=True)
            case FaultKind.DELAY_AFTER_APPLY:
                reply = self._signer.answer(client_id, body)
                return Reply(reply.status, reply.body, reply.headers, delay=fault.delay_seconds)
            case _:
                return self._signer.answer(client_id, body, _SIGNING_FAULTS[fault.kind])


def latest_key_version(keys: dict[str, rsa.RSAPublicKey]) -> str | None:
    return max(keys, key=int, default=None)


def is_json_media_type(value: str | None) -> bool:
    """``application/json`` with no charset or UTF-8 (the charset the signature is computed over)."""
    if not value:
        return False
    media_type, *parameters = (part.strip() for part in value.split(";"))
    if media_type.lower() != "application/json":
        return False
    for parameter in parameters:
        name, _, charset = parameter.partition("=")
        if name.strip().lower() == "charset" and charset.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True
