"""A fault-injecting HTTP proxy in front of moto server: the AWS half of the fault matrix.

The handler's boto3 clients talk to this proxy (``AWS_ENDPOINT_URL``) exactly as they would talk
to AWS; each request is forwarded to moto server unless a rule says otherwise. A proxy rather than
botocore event hooks, because the handler's own clients then meet real sockets: a hang is a real
read timeout of the handler's botocore config, a throttle is a real HTTP 400 JSON error that
botocore parses, classifies as throttling and retries with its own backoff, a dropped connection
is a real EOF. Hooks installed on the clients would skip exactly the code whose timing and retry
behaviour these tests measure.

Rules match the ``X-Amz-Target`` header with ``fnmatch`` (``DynamoDB_20120810.PutItem``,
``DynamoDB_*``, ``secretsmanager.GetSecretValue``); ``skip`` lets the first matching requests
through, ``times`` limits how many are hit (None: all). The first matching rule decides.
"""

from __future__ import annotations

import fnmatch
import http.client
import json
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

# How long a "hanging" request holds its connection at most; stop() releases it at once.
HANG_LIMIT_SECONDS = 60.0


class Action(StrEnum):
    HANG = "HANG"  # never answer, never forward: the client's read timeout ends it
    HANG_AFTER_FORWARD = "HANG_AFTER_FORWARD"  # moto applied it, the answer never comes
    DROP = "DROP"  # close the connection without an answer, not forwarded
    DROP_AFTER_FORWARD = "DROP_AFTER_FORWARD"  # moto applied it, then the connection closes
    THROTTLE = "THROTTLE"  # HTTP 400 ThrottlingException / ProvisionedThroughputExceededException
    HTTP_500 = "HTTP_500"  # HTTP 500 InternalServerError (botocore: transient, retried)
    DELAY = "DELAY"  # forward, and answer only after ``delay_seconds``


@dataclass
class Rule:
    target: str
    action: Action
    skip: int = 0
    times: int | None = None
    delay_seconds: float = 0.0
    seen: int = 0
    hits: int = 0

    def take(self, target: str) -> bool:
        """Whether this rule hits this request (counting it)."""
        if not fnmatch.fnmatchcase(target, self.target):
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.times is not None and self.hits >= self.times):
            return False
        self.hits += 1
        return True


@dataclass
class Seen:
    target: str
    action: str  # "FORWARD" or an Action


@dataclass
class AwsFaultProxy:
    upstream: str
    host: str = "127.0.0.1"
    rules: list[Rule] = field(default_factory=list)
    log: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer((self.host, 0), _handler_class(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._server.server_address[1]}"

    def add(
        self, target: str, action: Action, *, skip: int = 0, times: int | None = None, delay_seconds: float = 0.0
    ) -> Rule:
        rule = Rule(target, action, skip=skip, times=times, delay_seconds=delay_seconds)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def count(self, pattern: str, action: str | None = None) -> int:
        """Requests seen whose target matches ``pattern`` (and, if given, that met ``action``)."""
        with self._lock:
            return sum(
                1 for s in self.log if fnmatch.fnmatchcase(s.target, pattern) and (action is None or s.action == action)
            )

    def decide(self, target: str) -> Rule | None:
        with self._lock:
            rule = next((r for r in self.rules if r.take(target)), None)
            self.log.append(Seen(target, str(rule.action) if rule else "FORWARD"))
            return rule

    def wait_released(self, seconds: float) -> None:
        self._release.wait(seconds)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list[Any], bytes]:
        parts = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def start(self) -> Self:
        # A short poll interval: shutdown() waits for the loop to notice (0.5 s by default, per test).
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="aws-fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


def _error_body(target: str, action: Action) -> tuple[int, bytes, str]:
    dynamodb = target.startswith("DynamoDB")
    if action is Action.THROTTLE:
        kind = "ProvisionedThroughputExceededException" if dynamodb else "ThrottlingException"
        status, message = 400, "Rate exceeded (injected by the test proxy)"
    else:
        kind, status, message = "InternalServerError", 500, "Internal error (injected by the test proxy)"
    if dynamodb:
        kind = f"com.amazonaws.dynamodb.v20120810#{kind}"
    content_type = "application/x-amz-json-1.0" if dynamodb else "application/x-amz-json-1.1"
    return status, json.dumps({"__type": kind, "message": message}).encode(), content_type


def _handler_class(proxy: AwsFaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self._serve("POST")

        def do_GET(self) -> None:
            self._serve("GET")

        def _serve(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            target = self.headers.get("X-Amz-Target") or f"{method} {self.path}"
            rule = proxy.decide(target)
            action = rule.action if rule else None
            if action in (Action.HANG, Action.DROP):
                if action is Action.HANG:
                    proxy.wait_released(HANG_LIMIT_SECONDS)
                self.close_connection = True
                return
            if action in (Action.THROTTLE, Action.HTTP_500):
                assert action is not None
                status, payload, content_type = _error_body(target, action)
                self._answer(status, [("Content-Type", content_type), ("x-amzn-RequestId", "proxy")], payload)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            status, answer_headers, payload = proxy.forward(method, self.path, headers, body)
            if action is Action.HANG_AFTER_FORWARD:
                proxy.wait_released(HANG_LIMIT_SECONDS)
            if action in (Action.HANG_AFTER_FORWARD, Action.DROP_AFTER_FORWARD):
                self.close_connection = True
                return
            if action is Action.DELAY and rule is not None:
                proxy.wait_released(rule.delay_seconds)
            self._answer(status, [(k, v) for k, v in answer_headers if k.lower() not in _HOP_BY_HOP], payload)

        def _answer(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
            try:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True  # the client gave up (read timeout) meanwhile

    return Handler
