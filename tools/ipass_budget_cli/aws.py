"""AWS clients for the operator commands: the standard SDK environment, short timeouts, bounded retries.

``AWS_ENDPOINT_URL`` and the per-service variables (``AWS_ENDPOINT_URL_DYNAMODB``, ...) are honoured
by boto3 itself, which is how the commands reach the local stack.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})
# Who is reconciling is worth one quick try, not a wait: there is a fallback.
IDENTITY_CONFIG = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 1})


def session(region: str | None = None) -> boto3.Session:
    return boto3.Session(region_name=region) if region else boto3.Session()


def secretsmanager(aws: boto3.Session) -> SecretsManagerClient:
    return aws.client("secretsmanager", config=CLIENT_CONFIG)


def dynamodb(aws: boto3.Session) -> DynamoDBClient:
    return aws.client("dynamodb", config=CLIENT_CONFIG)


def caller_identity(aws: boto3.Session) -> str:
    """The caller's ARN from STS, or ``local:<user>`` when STS cannot be asked."""
    try:
        return str(aws.client("sts", config=IDENTITY_CONFIG).get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError, KeyError):
        return f"local:{local_user()}"


def local_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def describe(exc: BotoCoreError | ClientError) -> str:
    """A one-line description of an AWS error; AWS messages name resources and principals, not values."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc)
