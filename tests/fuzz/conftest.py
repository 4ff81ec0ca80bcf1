"""Fixtures for the fuzz tests: the service ones (moto server, sandbox, handler) and a local API in front.

``gateway`` serves the real handler over HTTP the way API Gateway's proxy integration calls it, so
schemathesis can talk to it like to a deployed stage (IAM authentication is not emulated).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from ipass_local.api_gateway import LocalApiGateway
from tests.service.conftest import handler, moto_server, service_env, unused_port  # noqa: F401


@pytest.fixture
def gateway(handler: ModuleType) -> Iterator[LocalApiGateway]:  # noqa: F811 - the re-exported fixture
    api = LocalApiGateway(handler.lambda_handler, port=0).start()
    yield api
    api.stop()
