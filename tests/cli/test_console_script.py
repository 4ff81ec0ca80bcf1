"""The installed ``ipass-budget`` console script, run as a separate process against the local API."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.support import CliResult
from tests.service.support import ServiceEnv

SCRIPT = Path(sys.executable).parent / "ipass-budget"


def test_the_console_script_updates_through_the_local_api(api: str, service_env: ServiceEnv) -> None:
    before = service_env.budget()

    completed = subprocess.run(
        [str(SCRIPT), "update", "--api", api, "--template", "DEMO-VALID", "--append", "11", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert document["body"]["outcome"] == "SUCCEEDED"
    assert completed.stderr.startswith(f"requestId: {document['body']['requestId']}")
    assert service_env.budget() == before + 11


def test_version_and_help(cli: Callable[..., CliResult], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as version:
        cli("--version")
    assert version.value.code == 0
    assert capsys.readouterr().out.startswith("ipass-budget ")
    for command in ("keys generate", "secret put", "update", "status", "reconcile"):
        with pytest.raises(SystemExit):
            cli(*command.split(), "--help")
        text = capsys.readouterr().out
        assert "exit codes:" in text, command
        assert "usage: ipass-budget" in text
    assert cli().code == 2
