"""Fixtures for the reliability suite: the service fixtures, plus a fault-injecting AWS proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.aws_proxy import AwsFaultProxy
from tests.service.conftest import handler, moto_server, service_env, unused_port  # noqa: F401
from tests.service.support import ServiceEnv


@pytest.fixture
def aws_proxy(service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsFaultProxy]:  # noqa: F811
    """The handler's AWS clients go through this proxy to moto; the test's own clients do not.

    Request it before ``handler`` so the handler's cached clients are built with the proxy's URL.
    """
    with AwsFaultProxy(service_env.moto_url) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        service_env.environ["AWS_ENDPOINT_URL"] = proxy.url
        yield proxy
