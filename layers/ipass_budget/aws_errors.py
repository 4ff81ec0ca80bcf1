"""What a failed Secrets Manager or DynamoDB call means for the caller: misconfigured, or unavailable."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from ipass_budget.errors import ConfigurationError, DependencyUnavailableError


def dependency_error(
    exc: ClientError | BotoCoreError, dependency: str, configuration_codes: frozenset[str], what: str
) -> ConfigurationError | DependencyUnavailableError:
    """A refusal that retrying cannot fix (``configuration_codes``) is a ConfigurationError about
    ``what``; anything else (throttling, 5xx, timeouts, connection errors) leaves ``dependency``
    unavailable for now. Messages carry only error codes and exception names, never values."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in configuration_codes:
            return ConfigurationError(f"{what} ({code})")
        return DependencyUnavailableError(dependency, code or "error")
    return DependencyUnavailableError(dependency, type(exc).__name__)
