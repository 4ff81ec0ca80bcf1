"""Fixtures shared by every test directory: generated keys and a fresh, running AlipayHK sandbox.

Keys are generated once per session (about 100 ms each); the sandbox is started per test on a free
port with the demo templates (see ``ipass_sandbox.config.demo_templates``) and Client-Id
``SANDBOXCLIENT01`` registered with ``client_private_key``'s public half as keyVersion 1.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget.client import AlipayClient, RetryPolicy
from ipass_budget.credentials import Credentials
from ipass_budget.keys import generate_private_key
from ipass_sandbox.admin_client import SandboxAdminClient
from ipass_sandbox.config import (
    DEMO_CLIENT_ID,
    DEMO_KEY_VERSION,
    DEMO_MERCHANT_ACCOUNT_ID,
    SandboxConfig,
    build_config,
    demo_templates,
)
from ipass_sandbox.server import SandboxServer

# Retries without waiting: tests must not sleep through backoff.
NO_WAIT_POLICY = RetryPolicy(base_delay=0.0, max_delay=0.0, rate_limited_base_delay=0.0, read_timeout=5.0)


@pytest.fixture(scope="session")
def sandbox_private_key() -> rsa.RSAPrivateKey:
    """The sandbox's own key: signs its answers (its public half is the alipayPublicKey)."""
    return generate_private_key()


@pytest.fixture(scope="session")
def client_private_key() -> rsa.RSAPrivateKey:
    """SANDBOXCLIENT01's keyVersion 1 key: signs requests."""
    return generate_private_key()


@pytest.fixture(scope="session")
def spare_private_key() -> rsa.RSAPrivateKey:
    """A key the sandbox does not know at start: for rotation and wrong-key tests."""
    return generate_private_key()


@pytest.fixture
def sandbox_config(sandbox_private_key: rsa.RSAPrivateKey, client_private_key: rsa.RSAPrivateKey) -> SandboxConfig:
    return build_config(
        sandbox_private_key, {DEMO_CLIENT_ID: {DEMO_KEY_VERSION: client_private_key.public_key()}}, demo_templates()
    )


@pytest.fixture
def sandbox(sandbox_config: SandboxConfig) -> Iterator[SandboxServer]:
    """A running sandbox on 127.0.0.1 with a fresh state; stopped after the test."""
    with SandboxServer(sandbox_config) as server:
        yield server


@pytest.fixture
def sandbox_admin(sandbox: SandboxServer) -> Iterator[SandboxAdminClient]:
    with SandboxAdminClient(sandbox.url) as admin:
        yield admin


@pytest.fixture
def credentials(sandbox_private_key: rsa.RSAPrivateKey, client_private_key: rsa.RSAPrivateKey) -> Credentials:
    """Credentials the sandbox accepts: SANDBOXCLIENT01, keyVersion 1, and the sandbox's public key."""
    return Credentials(
        client_id=DEMO_CLIENT_ID,
        merchant_account_id=DEMO_MERCHANT_ACCOUNT_ID,
        key_version=DEMO_KEY_VERSION,
        private_key=client_private_key,
        alipay_public_key=sandbox_private_key.public_key(),
    )


@pytest.fixture
def alipay_client(sandbox: SandboxServer) -> Iterator[AlipayClient]:
    """An AlipayClient for the sandbox that retries without waiting."""
    client = AlipayClient(sandbox.url, NO_WAIT_POLICY, sleep=lambda _seconds: None)
    yield client
    client.close()
