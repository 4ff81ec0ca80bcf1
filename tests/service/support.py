"""Helpers for the service tests: one test's deployment, and calling the handler as API Gateway does."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3

from ipass_local.api_gateway import LOCAL_CALLER_ARN, proxy_event
from ipass_local.lambda_context import LocalLambdaContext
from ipass_local.stack import LOCAL_REGION
from ipass_sandbox.admin_client import SandboxAdminClient
from ipass_sandbox.server import SandboxServer


@dataclass
class ServiceEnv:
    """One test's deployment: table, secret and the environment the function sees."""

    moto_url: str
    sandbox: SandboxServer
    admin: SandboxAdminClient
    table_name: str
    secret_id: str
    secret: dict[str, str]
    environ: dict[str, str] = field(default_factory=dict)

    def dynamodb(self) -> Any:
        return boto3.client("dynamodb", endpoint_url=self.moto_url, region_name=LOCAL_REGION)

    def secretsmanager(self) -> Any:
        return boto3.client("secretsmanager", endpoint_url=self.moto_url, region_name=LOCAL_REGION)

    def put_secret(self, secret: dict[str, Any] | str) -> None:
        text = secret if isinstance(secret, str) else json.dumps(secret)
        self.secretsmanager().put_secret_value(SecretId=self.secret_id, SecretString=text)

    def budget(self, template_code: str = "DEMO-VALID") -> int:
        template = self.admin.template(template_code)
        assert template is not None
        return int(template["budget"])

    def arrivals(self, request_id: str) -> int:
        return int(self.admin.request_record(request_id)["arrivals"])

    def ledger_item(self, request_id: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = (
            self.dynamodb().get_item(TableName=self.table_name, Key={"requestId": {"S": request_id}}).get("Item")
        )
        return item


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def call_api(
    handler: ModuleType,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    base64_body: bool = False,
    timeout_seconds: float = 25.0,
) -> ApiAnswer:
    """Invoke the handler with the proxy event API Gateway would send for this request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    event = proxy_event(method, path, {"Content-Type": "application/json"}, data, LOCAL_CALLER_ARN)
    if base64_body:
        event["body"], event["isBase64Encoded"] = base64.b64encode(data).decode(), True
    result = handler.lambda_handler(event, LocalLambdaContext(timeout_seconds=timeout_seconds))
    return ApiAnswer(result["statusCode"], result["headers"], json.loads(result["body"]))


def update(
    request_id: str, number: int = 100, template: str = "DEMO-VALID", kind: str = "APPEND_BUDGET"
) -> dict[str, Any]:
    return {"requestId": request_id, "templateCode": template, "updateType": kind, "number": number}


def new_id() -> str:
    return f"req-{uuid.uuid4().hex}"
