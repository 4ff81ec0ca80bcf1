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
