"""Exceptions the domain raises towards its callers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field: which field, and what is wrong with it."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class InvalidRequestError(ValueError):
    """The caller's input is invalid; nothing was sent. Carries one entry per bad field."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


class ConfigurationError(ValueError):
    """The service is misconfigured (secret fields, keys, algorithm); nothing was sent.

    Messages name the setting and the problem, never key material.
    """


class RequestInProgressError(RuntimeError):
    """Another invocation holds the claim on this requestId; retry after ``retry_after`` seconds."""

    def __init__(self, request_id: str, retry_after: int) -> None:
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(f"request {request_id} is still in progress")


class RequestIdReusedError(RuntimeError):
    """The requestId was used before with a different payload."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(f"requestId {request_id} was already used with a different payload")


class DependencyUnavailableError(RuntimeError):
    """Secrets Manager or DynamoDB could not be reached or refused for load; nothing was sent."""

    def __init__(self, dependency: str, detail: str) -> None:
        self.dependency = dependency
        super().__init__(f"{dependency} is unavailable: {detail}")
