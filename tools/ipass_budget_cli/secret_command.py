"""``ipass-budget secret put``: store a validated signing-secret file in Secrets Manager.

The file is parsed exactly as the service parses the secret (``parse_credentials``) before anything
is sent, so a secret the service would refuse never replaces a working one. Only the ARN and the
version id are printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from ipass_budget.credentials import parse_credentials
from ipass_budget.errors import ConfigurationError
from ipass_budget_cli import aws
from ipass_budget_cli.exit_codes import ExitCode
from ipass_budget_cli.render import print_problem

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

DESCRIPTION = "ipass-budget signing secret (clientId, merchantAccountId, privateKey, keyVersion, alipayPublicKey)"


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        print_problem(f"cannot read {path}: {reason}", "nothing was sent")
        return ExitCode.REFUSED
    try:
        parse_credentials(text)
    except ConfigurationError as exc:  # its messages never contain key material
        hint = "nothing was sent. Fix the file (see 'ipass-budget keys generate') and run the command again"
        if "alipayPublicKey" in str(exc):
            hint = 'nothing was sent. Fill in AlipayHK\'s public key as "alipayPublicKey" and run the command again'
        print_problem(f"{path} is not a usable signing secret: {exc}", hint)
        return ExitCode.REFUSED
    try:
        arn, version_id, created = put_secret(
            aws.secretsmanager(aws.session(args.region)), args.secret_id, text, args.kms_key_id
        )
    except ParamValidationError:
        # The message could quote parameter values; say only what is known to be safe.
        print_problem("Secrets Manager refused the request parameters (is the file over 64 KiB?)", "")
        return ExitCode.REFUSED
    except SecretNotFoundError as exc:
        print_problem(str(exc), "check --secret-id (an ARN must name an existing secret; a name is created)")
        return ExitCode.REFUSED
    except (BotoCoreError, ClientError) as exc:
        print_problem(
            f"Secrets Manager: {aws.describe(exc)}",
            "check your AWS credentials, region and permissions (secretsmanager:PutSecretValue, CreateSecret)",
        )
        return ExitCode.UNREACHABLE
    print(f"{'created' if created else 'updated'} {arn}")
    print(f"versionId {version_id}")
    print(
        "The service uses the new value once its cached copy is older than SECRET_CACHE_SECONDS (default 300 s), "
        "and at once when AlipayHK refuses a signature.",
        file=sys.stderr,
    )
    return ExitCode.OK


class SecretNotFoundError(LookupError):
    pass


def put_secret(
    client: SecretsManagerClient, secret_id: str, text: str, kms_key_id: str | None = None
) -> tuple[str, str, bool]:
    """A new version of an existing secret, or a new secret; returns (ARN, version id, created).

    ``kms_key_id`` applies only when the secret is created: an existing secret keeps its key.
    """
    try:
        answer = client.put_secret_value(SecretId=secret_id, SecretString=text)
        return answer["ARN"], answer["VersionId"], False
    except ClientError as exc:
        if aws.error_code(exc) != "ResourceNotFoundException":
            raise
    if secret_id.startswith("arn:"):
        raise SecretNotFoundError(f"no secret {secret_id}")
    try:
        if kms_key_id:
            created = client.create_secret(
                Name=secret_id, SecretString=text, Description=DESCRIPTION, KmsKeyId=kms_key_id
            )
        else:
            created = client.create_secret(Name=secret_id, SecretString=text, Description=DESCRIPTION)
        return created["ARN"], created["VersionId"], True
    except ClientError as exc:
        if aws.error_code(exc) != "ResourceExistsException":
            raise
    # Created by someone else in between: it exists now, so store a new version.
    answer = client.put_secret_value(SecretId=secret_id, SecretString=text)
    return answer["ARN"], answer["VersionId"], False
