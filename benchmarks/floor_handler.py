"""The floor for benchmarks/handler_bench.py: a minimal hand-written updateBudget Lambda handler.

Only boto3, requests, cryptography and the standard library; no Powertools, no ipass_budget. It
does the same job over the same network as functions/update_budget/app.py, with the same AWS
calls the ledger rules require, and nothing more:

    validate the body -> signing secret (Secrets Manager, cached per execution environment, keys
    parsed once) -> conditional PutItem claim (a refused claim returns the old item: a replay is
    one DynamoDB call) -> sign -> POST -> verify the signed answer -> conditional UpdateItem final

What it leaves out is what a floor may leave out: retries and backoff, deadlines, leases taken
over, UNKNOWN handling, logs, metrics and traces. It is a yardstick, never deployed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PATH = "/api/open/alipay/v1/ipass/template/manage/updateBudget"
PKCS1, SHA256 = padding.PKCS1v15(), hashes.SHA256()
TABLE = os.environ["LEDGER_TABLE_NAME"]
SECRET_ID = os.environ["SIGNING_SECRET_ID"]
URL = os.environ["IPASS_BASE_URL"].rstrip("/") + PATH
RETENTION_SECONDS = 7 * 86_400
# The real handler's timeouts and retries; otherwise boto3's defaults (the handler also turns off
# botocore's client-side parameter validation, a choice measured in docs/performance.md).
_CONFIG = Config(connect_timeout=0.5, read_timeout=1.0, retries={"mode": "standard", "total_max_attempts": 2})

ddb = boto3.client("dynamodb", config=_CONFIG)
secretsmanager = boto3.client("secretsmanager", config=_CONFIG)
http = requests.Session()
_secret: dict[str, Any] | None = None


def _signing_secret() -> dict[str, Any]:
    global _secret  # noqa: PLW0603 - the per-execution-environment cache
    if _secret is None:
        data = json.loads(secretsmanager.get_secret_value(SecretId=SECRET_ID)["SecretString"])
        data["private"] = serialization.load_pem_private_key(data["privateKey"].encode(), password=None)
        data["public"] = serialization.load_pem_public_key(data["alipayPublicKey"].encode())
        _secret = data
    return _secret


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def _valid(data: Any) -> bool:
    if not isinstance(data, dict) or not {"requestId", "templateCode", "updateType", "number"} <= data.keys():
        return False
    number = data["number"]
    return (
        data.keys() <= {"requestId", "templateCode", "updateType", "number", "merchantAccountId"}
        and all(isinstance(data.get(k, "x"), str) for k in ("requestId", "templateCode", "merchantAccountId"))
        and data["updateType"] in ("APPEND_BUDGET", "SUBTRACT_BUDGET")
        and isinstance(number, int)
        and not isinstance(number, bool)
        and 1 <= number <= 999_999
    )


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        data = json.loads(event.get("body") or "")
    except ValueError:
        data = None
    if not _valid(data):
        return _answer(400, {"error": {"code": "INVALID_REQUEST"}})
    secret = _signing_secret()
    request_id = data["requestId"]
    body = json.dumps(
        {
            "requestId": request_id,
            "merchantAccountId": data.get("merchantAccountId") or secret["merchantAccountId"],
            "templateCode": data["templateCode"],
            "updateType": data["updateType"],
            "number": data["number"],
        },
        separators=(",", ":"),
    ).encode()
    fingerprint = hashlib.sha256(body).hexdigest()
    now = time.time()
    stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
    token = secrets.token_hex(16)
    caller = ((event.get("requestContext") or {}).get("identity") or {}).get("userArn") or "unknown"
    try:  # the claim: one conditional PutItem; a refusal returns the existing item
        ddb.put_item(
            TableName=TABLE,
            Item={
                "requestId": {"S": request_id},
                "state": {"S": "SENDING"},
                "fingerprint": {"S": fingerprint},
                "body": {"S": body.decode()},
                "merchantAccountId": {"S": secret["merchantAccountId"]},
                "templateCode": {"S": data["templateCode"]},
                "updateType": {"S": data["updateType"]},
                "number": {"N": str(data["number"])},
                "caller": {"S": caller},
                "source": {"S": "api"},
                "createdAt": {"S": stamp},
                "updatedAt": {"S": stamp},
                "attempts": {"N": "0"},
                "mayApplied": {"BOOL": False},
                "version": {"N": "1"},
                "leaseToken": {"S": token},
                "leaseExpiresAt": {"N": str(int(now + 30))},
            },
            ConditionExpression="attribute_not_exists(requestId) OR expiresAt <= :now",
            ExpressionAttributeValues={":now": {"N": str(int(now))}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        old: Any = exc.response.get("Item")
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException" or not old:
            raise
        if old["fingerprint"]["S"] != fingerprint:
            return _answer(422, {"error": {"code": "REQUEST_ID_REUSED"}})
        if old["state"]["S"] not in ("SUCCEEDED", "FAILED"):
            return _answer(409, {"error": {"code": "REQUEST_IN_PROGRESS"}})
        info = {k: v["S"] for k, v in old.get("resultInfo", {}).get("M", {}).items()}
        outcome = old["state"]["S"]
        return _answer(200, {"requestId": request_id, "outcome": outcome, "resultInfo": info, "replayed": True})

    request_time = datetime.now(UTC).isoformat(timespec="seconds")
    client_id = secret["clientId"]
    private: rsa.RSAPrivateKey = secret["private"]
    signature = base64.b64encode(
        private.sign(f"POST {PATH}\n{client_id}.{request_time}.".encode() + body, PKCS1, SHA256)
    )
    headers = {
        "Content-Type": "application/json; charset=UTF-8",
        "Client-Id": client_id,
        "Request-Time": request_time,
        "Signature": f"algorithm=RSA256,keyVersion={secret.get('keyVersion') or '1'},"
        f"signature={quote(signature.decode(), safe='')}",
    }
    response = http.post(URL, data=body, headers=headers, timeout=(3, 8), allow_redirects=False)
    answer = response.content
    encoded = response.headers["Signature"].split("signature=", 1)[1]
    content = f"POST {PATH}\n{client_id}.{response.headers['Response-Time']}.".encode() + answer
    public: rsa.RSAPublicKey = secret["public"]
    public.verify(base64.b64decode(unquote(encoded)), content, PKCS1, SHA256)  # raises if it does not verify
    info = json.loads(answer)["resultInfo"]
    state = {"S": "SUCCEEDED", "F": "FAILED"}.get(info["resultStatus"], "UNKNOWN")

    ddb.update_item(  # the final write, conditional on our claim
        TableName=TABLE,
        Key={"requestId": {"S": request_id}},
        UpdateExpression=(
            "SET #state = :state, attempts = attempts + :one, mayApplied = :may, updatedAt = :now_iso, "
            "#reason = :reason, version = version + :one, resultInfo = :info, tracerId = :tracer, "
            "expiresAt = :expires REMOVE leaseToken, leaseExpiresAt"
        ),
        ConditionExpression="leaseToken = :token",
        ExpressionAttributeNames={"#state": "state", "#reason": "reason"},
        ExpressionAttributeValues={
            ":state": {"S": state},
            ":one": {"N": "1"},
            ":may": {"BOOL": state == "SUCCEEDED"},
            ":now_iso": {"S": datetime.now(UTC).isoformat(timespec="milliseconds")},
            ":reason": {"S": info.get("resultCode", "")},
            ":info": {"M": {k: {"S": str(v)} for k, v in info.items()}},
            ":tracer": {"S": response.headers.get("Tracer-Id") or "-"},
            ":expires": {"N": str(int(time.time() + RETENTION_SECONDS))},
            ":token": {"S": token},
        },
    )
    outcome = {"SUCCEEDED": 200, "FAILED": 422}.get(state, 503)
    return _answer(outcome, {"requestId": request_id, "outcome": state, "resultInfo": info, "replayed": False})
