"""The real handler against moto server (DynamoDB, Secrets Manager) and the sandbox, over HTTP.

Each test gets its own table and secret (created from template.yaml's definition) in a moto
server shared by the session, and a fresh sandbox.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from types import ModuleType

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_local.handler import load_handler_module
from ipass_local.moto_server import MotoServerProcess
from ipass_local.stack import LOCAL_REGION
from ipass_local.template import create_ledger_table
from ipass_sandbox.admin_client import SandboxAdminClient
from ipass_sandbox.config import DEMO_CLIENT_ID, DEMO_MERCHANT_ACCOUNT_ID, signing_secret
from ipass_sandbox.server import SandboxServer
from tests.service.support import ServiceEnv


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServerProcess]:
    with MotoServerProcess() as server:
        yield server


@pytest.fixture
def service_env(
    moto_server: MotoServerProcess,
    sandbox: SandboxServer,
    sandbox_admin: SandboxAdminClient,
    sandbox_private_key: rsa.RSAPrivateKey,
    client_private_key: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> ServiceEnv:
    suffix = uuid.uuid4().hex[:12]
    env = ServiceEnv(
        moto_url=moto_server.url,
        sandbox=sandbox,
        admin=sandbox_admin,
        table_name=f"ledger-{suffix}",
        secret_id=f"signing-{suffix}",
        secret=signing_secret(
            DEMO_CLIENT_ID, DEMO_MERCHANT_ACCOUNT_ID, client_private_key, sandbox_private_key.public_key()
        ),
    )
    env.environ = {
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "LEDGER_TABLE_NAME": env.table_name,
        "SIGNING_SECRET_ID": env.secret_id,
        "IPASS_BASE_URL": sandbox.url,
        "IPASS_RETRY_BASE_DELAY_SECONDS": "0",
        "IPASS_RETRY_MAX_DELAY_SECONDS": "0",
        "IPASS_RATE_LIMITED_BASE_DELAY_SECONDS": "0",
        "POWERTOOLS_SERVICE_NAME": "ipass-budget",
        "POWERTOOLS_METRICS_NAMESPACE": "IpassBudget",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    for name, value in env.environ.items():
        monkeypatch.setenv(name, value)
    create_ledger_table(env.dynamodb(), env.table_name)
    env.secretsmanager().create_secret(Name=env.secret_id, SecretString=json.dumps(env.secret))
    return env


@pytest.fixture
def handler(service_env: ServiceEnv) -> Iterator[ModuleType]:
    """The handler module, with its per-environment service rebuilt for this test's settings."""
    module = load_handler_module()
    module.budget_service.cache_clear()
    yield module
    module.budget_service.cache_clear()


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
