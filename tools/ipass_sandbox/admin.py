"""``/__sandbox/...``: inspect and steer the sandbox (templates, client keys, faults, memory, stats).

Plain JSON, unsigned: these endpoints stand in for AlipayHK's back office, not its gateway.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from ipass_budget.errors import ConfigurationError
from ipass_budget.keys import load_public_key
from ipass_sandbox.config import is_key_version
from ipass_sandbox.exchange import Reply, Request, error_reply, json_reply
from ipass_sandbox.faults import FaultError, parse_fault
from ipass_sandbox.state import SandboxState
from ipass_sandbox.templates import TemplateError, parse_template

ADMIN_PREFIX = "/__sandbox/"


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[], Reply]


class AdminEndpoints:
    def __init__(self, state: SandboxState) -> None:
        self._state = state

    def handle(self, request: Request) -> Reply:
        # Split before decoding so that a requestId may contain an encoded "/" (%2F).
        parts = [unquote(part) for part in request.path.removeprefix(ADMIN_PREFIX).split("/")]
        try:
            return self._route(request, parts)
        except AdminError as exc:
            return error_reply(exc.status, str(exc))

    def _route(self, request: Request, parts: list[str]) -> Reply:
        if not all(parts):
            raise AdminError(404, "no such sandbox endpoint")
        match parts:
            case ["faults"]:
                return _dispatch(
                    request,
                    {
                        "POST": lambda: self._add_fault(request),
                        "GET": self._list_faults,
                        "DELETE": self._clear_faults,
                    },
                )
            case ["templates"]:
                return _dispatch(request, {"GET": self._list_templates})
            case ["templates", code]:
                return _dispatch(
                    request, {"GET": lambda: self._get_template(code), "PUT": lambda: self._put_template(request, code)}
                )
            case ["clients", client_id, "keys", version]:
                return _dispatch(
                    request,
                    {
                        "PUT": lambda: self._put_key(request, client_id, version),
                        "DELETE": lambda: self._delete_key(client_id, version),
                    },
                )
            case ["requests", request_id]:
                return _dispatch(request, {"GET": lambda: json_reply(200, self._state.request_record(request_id))})
            case ["stats"]:
                return _dispatch(request, {"GET": lambda: json_reply(200, self._state.stats())})
            case ["reset"]:
                return _dispatch(request, {"POST": self._reset})
            case _:
                raise AdminError(404, "no such sandbox endpoint")

    def _add_fault(self, request: Request) -> Reply:
        try:
            fault = parse_fault(_json_body(request))
        except FaultError as exc:
            raise AdminError(400, str(exc)) from None
        self._state.add_fault(fault)
        return json_reply(201, fault.to_dict())

    def _list_faults(self) -> Reply:
        return json_reply(200, {"faults": [fault.to_dict() for fault in self._state.faults()]})

    def _clear_faults(self) -> Reply:
        self._state.clear_faults()
        return json_reply(200, {"faults": []})

    def _list_templates(self) -> Reply:
        return json_reply(200, {"templates": [template.to_dict() for template in self._state.templates()]})

    def _get_template(self, code: str) -> Reply:
        template = self._state.template(code)
        if template is None:
            raise AdminError(404, f"template {code[:64]} does not exist")
        return json_reply(200, template.view())

    def _put_template(self, request: Request, code: str) -> Reply:
        try:
            template = parse_template(_json_body(request), code)
        except TemplateError as exc:
            raise AdminError(400, str(exc)) from None
        created = self._state.put_template(template)
        return json_reply(201 if created else 200, template.to_dict())

    def _put_key(self, request: Request, client_id: str, version: str) -> Reply:
        if not is_key_version(version):
            raise AdminError(400, "keyVersion must be a whole number")
        body = _json_body(request)
        text = body.get("publicKey")
        if not isinstance(text, str):
            raise AdminError(400, "publicKey must be a PEM or base64 string")
        try:
            key = load_public_key(text, "publicKey")
        except ConfigurationError as exc:
            raise AdminError(400, str(exc)) from None
        created = self._state.register_key(client_id, version, key)
        return json_reply(201 if created else 200, {"clientId": client_id, "keyVersion": version})

    def _delete_key(self, client_id: str, version: str) -> Reply:
        if not self._state.remove_key(client_id, version):
            raise AdminError(404, f"no key with keyVersion {version[:20]} for this Client-Id")
        return json_reply(200, {"clientId": client_id, "keyVersion": version, "removed": True})

    def _reset(self) -> Reply:
        self._state.reset()
        return json_reply(200, {"reset": True})


def _dispatch(request: Request, handlers: dict[str, Handler]) -> Reply:
    handler = handlers.get(request.method)
    if handler is None:
        allowed = ", ".join(handlers)
        reply = error_reply(405, f"{request.method} is not allowed here; use {allowed}")
        return Reply(reply.status, reply.body, (*reply.headers, ("Allow", allowed)))
    return handler()


def _json_body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise AdminError(400, "request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise AdminError(400, "request body must be a JSON object")
    return data
