"""CLI tests run ``ipass-budget`` against the local stack: moto server, the sandbox and the real handler
behind ``LocalApiGateway``. The service fixtures are imported (pytest registers imported fixtures)."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ipass_local.api_gateway import LocalApiGateway
from ipass_local.moto_server import MotoServerProcess
from ipass_local.stack import LOCAL_REGION
from tests.cli.support import CliResult, run_cli
from tests.service.conftest import handler, moto_server, service_env, unused_port  # noqa: F401

_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "LEDGER_TABLE_NAME",
)


@pytest.fixture(autouse=True)
def isolated_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No AWS settings from the machine running the tests: no profiles, no keys, no instance metadata."""
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    nowhere = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(nowhere))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """``cli("update", "--api", ...)`` runs ``ipass_budget_cli.cli.main`` in-process."""

    def run(*argv: str | Path) -> CliResult:
        return run_cli(capsys, *(str(a) for a in argv))

    return run


@pytest.fixture
def api(handler: ModuleType) -> Iterator[str]:  # noqa: F811 - the imported fixture
    """The real handler behind the local API Gateway stand-in, on a free port: its base URL."""

    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # The handler prints its metrics (EMF) to sys.stdout, which capsys shares with the CLI under test;
        # the CLI waits for the answer meanwhile, so swapping sys.stdout for the call cannot swallow its output.
        with contextlib.redirect_stdout(sys.__stdout__ or io.StringIO()):
            result: dict[str, Any] = handler.lambda_handler(event, context)
        return result

    gateway = LocalApiGateway(lambda_handler, port=0).start()
    yield gateway.url
    gateway.stop()


@pytest.fixture
def moto_env(moto_server: MotoServerProcess, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    """The standard AWS environment pointed at moto server (without a sandbox or a table)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", LOCAL_REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return moto_server.url
