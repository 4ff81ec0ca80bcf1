"""A small client for the ``/__sandbox/...`` endpoints, for tests, benchmarks and the local stack."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import requests

from ipass_sandbox.faults import FaultKind


class SandboxAdminClient:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        """One raw admin call; ``path`` is below ``/__sandbox/`` and must already be percent-encoded."""
        return self._session.request(method, f"{self.base_url}/__sandbox/{path}", json=body, timeout=self.timeout)

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        response = self.call(method, path, body)
        response.raise_for_status()
        return response.json()

    def template(self, template_code: str) -> dict[str, Any] | None:
        """``{"templateCode", "status", "budget", "issued"}``, or None when the template does not exist."""
        response = self.call("GET", f"templates/{_segment(template_code)}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def put_template(
        self, template_code: str, merchant_account_id: str, status: str, budget: int, issued: int
    ) -> dict[str, Any]:
        body = {"merchantAccountId": merchant_account_id, "status": status, "budget": budget, "issued": issued}
        result: dict[str, Any] = self._json("PUT", f"templates/{_segment(template_code)}", body)
        return result

    def add_fault(
        self, request_id: str, fault: FaultKind | str, attempt: int | None = None, delay_seconds: float | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"requestId": request_id, "fault": str(fault)}
        if attempt is not None:
            body["attempt"] = attempt
        if delay_seconds is not None:
            body["delaySeconds"] = delay_seconds
        result: dict[str, Any] = self._json("POST", "faults", body)
        return result

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", "faults")["faults"]
        return result

    def clear_faults(self) -> None:
        self._json("DELETE", "faults")

    def register_key(self, client_id: str, key_version: str, public_key: str) -> None:
        self._json("PUT", _key_path(client_id, key_version), {"publicKey": public_key})

    def remove_key(self, client_id: str, key_version: str) -> None:
        self._json("DELETE", _key_path(client_id, key_version))

    def request_record(self, request_id: str) -> dict[str, Any]:
        """``{"requestId", "arrivals", "applied", "answer"}`` for one requestId."""
        result: dict[str, Any] = self._json("GET", f"requests/{_segment(request_id)}")
        return result

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = self._json("GET", "stats")
        return result

    def reset(self) -> None:
        self._json("POST", "reset")


def _segment(value: str) -> str:
    return quote(value, safe="")


def _key_path(client_id: str, key_version: str) -> str:
    return f"clients/{_segment(client_id)}/keys/{_segment(key_version)}"
