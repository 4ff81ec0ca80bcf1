"""ipass-budget keys generate: the key pair, the 0600 secret file, and nothing private on screen."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget.credentials import parse_credentials
from ipass_budget.keys import load_private_key, public_key_base64, public_key_pem
from tests.cli.support import CliResult

Cli = Callable[..., CliResult]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _generate(cli: Cli, out: Path, *extra: str) -> CliResult:
    return cli("keys", "generate", "--client-id", "CLIENT-1", "--merchant-account-id", "2160001", "--out", out, *extra)


def test_generate_prints_only_the_public_key_and_writes_a_0600_secret(
    cli: Cli, tmp_path: Path, sandbox_private_key: rsa.RSAPrivateKey
) -> None:
    out = tmp_path / "secret.json"
    alipay_key = public_key_base64(sandbox_private_key)

    result = _generate(cli, out, "--key-version", "3", "--alipay-public-key", alipay_key)

    assert result.code == 0
    assert _mode(out) == 0o600
    secret = json.loads(out.read_text())
    assert secret["clientId"] == "CLIENT-1"
    assert secret["merchantAccountId"] == "2160001"
    assert secret["keyVersion"] == "3"
    assert secret["algorithm"] == "RSA256"
    assert secret["alipayPublicKey"] == public_key_pem(sandbox_private_key)
    private_key = load_private_key(secret["privateKey"])
    assert private_key.key_size == 2048
    # stdout is exactly one line: the base64 SubjectPublicKeyInfo of the key written to the file.
    assert result.out.splitlines() == [public_key_base64(private_key)]
    assert parse_credentials(out.read_text()).key_version == "3"
    # Nothing private is shown: no PEM, no line of the private key's base64 body.
    shown = result.out + result.err
    assert "PRIVATE" not in shown
    body_lines = [line for line in secret["privateKey"].splitlines() if not line.startswith("-----")]
    assert not any(line in shown for line in body_lines)
    assert "secret put" in result.err


def test_without_alipay_key_the_field_is_empty_and_the_next_steps_say_so(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "secret.json"

    result = _generate(cli, out)

    assert result.code == 0
    assert json.loads(out.read_text())["alipayPublicKey"] == ""
    assert "alipayPublicKey" in result.err
    assert "empty" in result.err


def test_an_existing_file_is_kept_unless_force(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "secret.json"
    out.write_text("keep me")
    out.chmod(0o644)

    refused = _generate(cli, out)

    assert refused.code == 6
    assert out.read_text() == "keep me"
    assert "--force" in refused.err
    assert refused.out == ""

    forced = _generate(cli, out, "--force")

    assert forced.code == 0
    assert json.loads(out.read_text())["clientId"] == "CLIENT-1"
    assert _mode(out) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.json"]  # no temporary file left behind


def test_alipay_key_from_a_file(cli: Cli, tmp_path: Path, sandbox_private_key: rsa.RSAPrivateKey) -> None:
    pem_file = tmp_path / "alipay.pem"
    pem_file.write_text(public_key_pem(sandbox_private_key))
    out = tmp_path / "secret.json"

    assert _generate(cli, out, "--alipay-public-key", f"@{pem_file}").code == 0
    assert json.loads(out.read_text())["alipayPublicKey"] == public_key_pem(sandbox_private_key)


def test_bad_options_write_nothing(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "secret.json"
    cases = [
        ("--key-version", "0"),
        ("--key-version", "v2"),
        ("--alipay-public-key", "not-a-key"),
        ("--alipay-public-key", f"@{tmp_path / 'missing.pem'}"),
    ]
    for option, value in cases:
        result = _generate(cli, out, option, value)
        assert result.code == 6, (option, value)
        assert result.err.startswith("error: ")
    bad_client = cli("keys", "generate", "--client-id", "has space", "--merchant-account-id", "M", "--out", out)
    assert bad_client.code == 6
    assert "--client-id" in bad_client.err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
