"""One HTTP exchange as the sandbox logic sees it, kept apart from http.server plumbing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    # The request target in origin form (path plus any query), exactly as signed by the client.
    target: str
    # Header names lower-cased; the first occurrence of a repeated header wins.
    headers: Mapping[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    # Close the connection without answering at all (simulates a lost answer).
    drop: bool = False
    # Seconds to wait, interruptibly, before answering (simulates a slow gateway).
    delay: float = 0.0
    # Answer, then close the connection (used when the request could not be read fully).
    close: bool = False


def json_reply(status: int, data: Any, *, close: bool = False) -> Reply:
    body = json.dumps(data, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, (("Content-Type", "application/json"),), close=close)


def error_reply(status: int, message: str, *, close: bool = False) -> Reply:
    return json_reply(status, {"error": message}, close=close)
