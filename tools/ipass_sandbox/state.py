"""Everything the sandbox remembers, behind one lock so that concurrent requests see one history."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget.keys import load_public_key
from ipass_sandbox.answers import REPEAT_REQ_INCONSISTENT, failure, result_body
from ipass_sandbox.budget import BudgetRequest, Payload, decide
from ipass_sandbox.config import SandboxConfig
from ipass_sandbox.faults import Fault
from ipass_sandbox.templates import Template


@dataclass(frozen=True, slots=True)
class RememberedAnswer:
    """The first answer the budget logic gave to one requestId of one Client-Id."""

    payload: Payload
    body: bytes
    applied: bool


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._templates: dict[str, Template] = {}
        self._client_keys: dict[str, dict[str, rsa.RSAPublicKey]] = {}
        # requestId -> Client-Id -> answer. requestIds are scoped per Client-Id, as AlipayHK scopes
        # everything else per client; the outer key lets /__sandbox/requests/{id} find them.
        self._answers: dict[str, dict[str, RememberedAnswer]] = {}
        self._arrivals: dict[str, int] = {}
        self._faults: list[Fault] = []
        self._connections = 0
        self._api_requests = 0
        self.reset()

    def reset(self) -> None:
        """Back to the loaded config: templates and keys as configured; memory, faults and stats empty."""
        keys = {
            client_id: {version: load_public_key(text, "client publicKey") for version, text in versions.items()}
            for client_id, versions in self._config.clients.items()
        }
        with self._lock:
            self._templates = {template.template_code: template for template in self._config.templates}
            self._client_keys = keys
            self._answers.clear()
            self._arrivals.clear()
            self._faults.clear()
            self._connections = 0
            self._api_requests = 0

    # --- client keys -------------------------------------------------------------------------------

    def client_keys(self, client_id: str) -> dict[str, rsa.RSAPublicKey] | None:
        """The client's public keys by keyVersion, or None if the Client-Id is not registered."""
        with self._lock:
            keys = self._client_keys.get(client_id)
            return None if keys is None else dict(keys)

    def register_key(self, client_id: str, key_version: str, key: rsa.RSAPublicKey) -> bool:
        """Register (or replace) one key; True when the keyVersion is new for the client."""
        with self._lock:
            keys = self._client_keys.setdefault(client_id, {})
            created = key_version not in keys
            keys[key_version] = key
            return created

    def remove_key(self, client_id: str, key_version: str) -> bool:
        """Remove one key. The Client-Id stays registered (answering KEY_NOT_FOUND) even without keys."""
        with self._lock:
            return self._client_keys.get(client_id, {}).pop(key_version, None) is not None

    # --- templates ---------------------------------------------------------------------------------

    def template(self, template_code: str) -> Template | None:
        with self._lock:
            return self._templates.get(template_code)

    def templates(self) -> list[Template]:
        with self._lock:
            return list(self._templates.values())

    def put_template(self, template: Template) -> bool:
        """Create or replace a template; True when it is new."""
        with self._lock:
            created = template.template_code not in self._templates
            self._templates[template.template_code] = template
            return created

    # --- the budget logic --------------------------------------------------------------------------

    def update_budget(self, client_id: str, request: BudgetRequest) -> bytes:
        """Answer body for one valid request, applied at most once per (Client-Id, requestId).

        Lookup, budget change and remembering happen under one lock hold, so concurrent repeats of a
        requestId cannot both apply.
        """
        with self._lock:
            remembered = self._answers.get(request.request_id, {}).get(client_id)
            if remembered is not None:
                if remembered.payload == request.payload:
                    return remembered.body
                # Not remembered: the first answer stays the answer for this requestId.
                return result_body(
                    failure(
                        REPEAT_REQ_INCONSISTENT,
                        f"requestId {request.request_id} was already used with different parameters",
                    )
                )
            updated, info = decide(self._templates.get(request.template_code), request)
            if updated is not None:
                self._templates[updated.template_code] = updated
            body = result_body(info)
            answer = RememberedAnswer(request.payload, body, applied=updated is not None)
            self._answers.setdefault(request.request_id, {})[client_id] = answer
            return body

    # --- arrivals, faults, stats ------------------------------------------------------------------

    def record_arrival(self, request_id: str) -> Fault | None:
        """Count one arrival of ``request_id`` and return the fault planned for it, if any."""
        with self._lock:
            arrival = self._arrivals.get(request_id, 0) + 1
            self._arrivals[request_id] = arrival
            return next((fault for fault in self._faults if fault.matches(request_id, arrival)), None)

    def request_record(self, request_id: str) -> dict[str, Any]:
        with self._lock:
            answers = list(self._answers.get(request_id, {}).values())
            arrivals = self._arrivals.get(request_id, 0)
        return {
            "requestId": request_id,
            "arrivals": arrivals,
            "applied": any(answer.applied for answer in answers),
            "answer": json.loads(answers[0].body) if answers else None,
        }

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def count_connection(self) -> None:
        with self._lock:
            self._connections += 1

    def count_api_request(self) -> None:
        with self._lock:
            self._api_requests += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"connections": self._connections, "requests": self._api_requests}
