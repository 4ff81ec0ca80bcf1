"""The service fixtures (moto server, a deployment per test, the handler module) for the security tests."""

from __future__ import annotations

from tests.service.conftest import handler, moto_server, service_env, unused_port  # noqa: F401
