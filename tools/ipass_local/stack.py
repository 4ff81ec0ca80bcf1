"""The whole service on one machine: moto server, the sandbox, and the real handler behind a local API."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from ipass_local.api_gateway import LocalApiGateway
from ipass_local.handler import load_handler_module
from ipass_local.moto_server import MotoServerProcess
from ipass_local.template import create_ledger_table
from ipass_sandbox.config import demo_config
from ipass_sandbox.server import SandboxServer

LOCAL_REGION = "us-east-1"


@dataclass(frozen=True)
class LocalStackSettings:
    state_dir: Path = Path(".local")
    api_port: int = 3000
    sandbox_port: int = 8780
    table_name: str = "ipass-budget-ledger"
    secret_id: str = "ipass-budget/signing-secret"  # noqa: S105 - a secret name, not a secret


def local_environment(moto_url: str, sandbox_url: str, settings: LocalStackSettings) -> dict[str, str]:
    """The function environment of contract section 2, pointed at the local stand-ins."""
    return {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_REGION": LOCAL_REGION,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",  # nosec B105  # moto accepts any credentials; not a real key
        "LEDGER_TABLE_NAME": settings.table_name,
        "SIGNING_SECRET_ID": settings.secret_id,
        "IPASS_BASE_URL": sandbox_url,
        "POWERTOOLS_SERVICE_NAME": "ipass-budget",
        "POWERTOOLS_METRICS_NAMESPACE": "IpassBudget",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


class LocalStack:
    def __init__(self, settings: LocalStackSettings | None = None) -> None:
        self.settings = settings or LocalStackSettings()
        self.moto = MotoServerProcess()
        self.sandbox: SandboxServer | None = None
        self.api: LocalApiGateway | None = None
        self.secret_path: Path | None = None

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        settings = self.settings
        self.moto.start()
        config, self.secret_path = demo_config(settings.state_dir / "sandbox")
        self.sandbox = SandboxServer(config, host="127.0.0.1", port=settings.sandbox_port).start()
        os.environ.update(local_environment(self.moto.url, self.sandbox.url, settings))
        create_ledger_table(boto3.client("dynamodb"), settings.table_name)
        boto3.client("secretsmanager").create_secret(
            Name=settings.secret_id, SecretString=self.secret_path.read_text(encoding="utf-8")
        )
        module = load_handler_module()
        module.budget_service.cache_clear()  # the environment above is new for this process
        self.api = LocalApiGateway(module.lambda_handler, port=settings.api_port).start()

    def stop(self) -> None:
        if self.api:
            self.api.stop()
            self.api = None
        if self.sandbox:
            self.sandbox.stop()
            self.sandbox = None
        self.moto.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
