"""``ipass-budget``: the operator CLI (keys, signing secret, budget updates, status, reconciliation)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def cli_version() -> str:
    try:
        return version("ipass-budget")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"
