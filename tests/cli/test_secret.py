"""ipass-budget secret put: validated first, then created or given a new version in moto server."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget.keys import public_key_base64
from tests.cli.support import CliResult

Cli = Callable[..., CliResult]


def _secret_file(cli: Cli, path: Path, *extra: str) -> Path:
    generated = cli(
        "keys", "generate", "--client-id", "C1", "--merchant-account-id", "M1", "--out", path, "--force", *extra
    )
    assert generated.code == 0
    return path


def test_put_creates_the_secret_then_stores_a_new_version(
    cli: Cli, moto_env: str, tmp_path: Path, sandbox_private_key: rsa.RSAPrivateKey
) -> None:
    secrets = boto3.client("secretsmanager")
    name = f"ipass-budget/test-{uuid.uuid4().hex[:8]}"
    alipay = ("--alipay-public-key", public_key_base64(sandbox_private_key))
    first_file = _secret_file(cli, tmp_path / "first.json", *alipay)

    created = cli("secret", "put", "--secret-id", name, "--file", first_file)

    assert created.code == 0
    arn = secrets.describe_secret(SecretId=name)["ARN"]
    assert created.out.splitlines()[0] == f"created {arn}"
    first_version = created.out.splitlines()[1].split()[1]
    stored = secrets.get_secret_value(SecretId=name)
    assert stored["SecretString"] == first_file.read_text()
    assert stored["VersionId"] == first_version

    second_file = _secret_file(cli, tmp_path / "second.json", *alipay)
    updated = cli("secret", "put", "--secret-id", arn, "--file", second_file)

    assert updated.code == 0
    assert updated.out.splitlines()[0] == f"updated {arn}"
    second_version = updated.out.splitlines()[1].split()[1]
    assert second_version != first_version
    assert secrets.get_secret_value(SecretId=name)["SecretString"] == second_file.read_text()
    for result in (created, updated):
        assert "PRIVATE" not in result.out + result.err


@pytest.mark.parametrize("content", ["incomplete", "not json", "{}"])
def test_an_unusable_file_is_refused_and_nothing_is_sent(cli: Cli, moto_env: str, tmp_path: Path, content: str) -> None:
    name = f"ipass-budget/test-{uuid.uuid4().hex[:8]}"
    if content == "incomplete":  # a fresh key pair, AlipayHK's key not filled in yet
        path = _secret_file(cli, tmp_path / "secret.json")
    else:
        path = tmp_path / "secret.json"
        path.write_text(content)

    result = cli("secret", "put", "--secret-id", name, "--file", path)

    assert result.code == 6
    assert "not a usable signing secret" in result.err
    assert "nothing was sent" in result.err
    assert "PRIVATE" not in result.out + result.err
    if content == "incomplete":
        assert "alipayPublicKey" in result.err
    names = [s["Name"] for s in boto3.client("secretsmanager").list_secrets()["SecretList"]]
    assert name not in names


def test_an_unknown_arn_is_not_created(
    cli: Cli, moto_env: str, tmp_path: Path, sandbox_private_key: rsa.RSAPrivateKey
) -> None:
    path = _secret_file(cli, tmp_path / "s.json", "--alipay-public-key", public_key_base64(sandbox_private_key))
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf"

    result = cli("secret", "put", "--secret-id", arn, "--file", path)

    assert result.code == 6
    assert "no secret" in result.err


def test_a_missing_file_is_refused(cli: Cli, tmp_path: Path) -> None:
    result = cli("secret", "put", "--secret-id", "x", "--file", tmp_path / "nope.json")
    assert result.code == 6
    assert "cannot read" in result.err


def test_put_creates_a_new_secret_under_the_given_kms_key(
    cli: Cli, moto_env: str, tmp_path: Path, sandbox_private_key: rsa.RSAPrivateKey
) -> None:
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    name = f"ipass-budget/test-{uuid.uuid4().hex[:8]}"
    secret_file = _secret_file(
        cli, tmp_path / "kms.json", "--alipay-public-key", public_key_base64(sandbox_private_key)
    )

    result = cli("secret", "put", "--secret-id", name, "--file", secret_file, "--kms-key-id", key_id)

    assert result.code == 0
    assert boto3.client("secretsmanager").describe_secret(SecretId=name)["KmsKeyId"] == key_id
