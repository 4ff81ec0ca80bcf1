"""The signing secret, fetched from Secrets Manager and cached per execution environment."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from ipass_budget.aws_errors import dependency_error
from ipass_budget.credentials import Credentials, parse_credentials
from ipass_budget.errors import ConfigurationError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

# Errors that retrying will not fix: the secret or the permission to read it is missing.
_CONFIGURATION_CODES = frozenset(
    {"ResourceNotFoundException", "AccessDeniedException", "DecryptionFailure", "InvalidRequestException"}
)


class SecretSource:
    def __init__(
        self,
        client: SecretsManagerClient,
        secret_id: str,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._max_age = max_age_seconds
        self._clock = clock
        self._cached: Credentials | None = None
        self._loaded_at = 0.0

    def get(self, *, refresh: bool = False) -> Credentials:
        """Cached credentials; ``refresh`` re-reads the secret (e.g. after AlipayHK refused a signature)."""
        if self._cached is None or refresh or self._clock() - self._loaded_at >= self._max_age:
            self._cached = parse_credentials(self._fetch())
            self._loaded_at = self._clock()
        return self._cached

    def _fetch(self) -> str:
        try:
            answer = self._client.get_secret_value(SecretId=self._secret_id)
        except (ClientError, BotoCoreError) as exc:
            raise dependency_error(
                exc, "Secrets Manager", _CONFIGURATION_CODES, "signing secret cannot be read"
            ) from None
        text = answer.get("SecretString")
        if not text:
            raise ConfigurationError("signing secret has no SecretString")
        return text
