"""A local stand-in for API Gateway (REST, proxy integration) in front of the real handler.

Each HTTP request becomes the proxy event API Gateway would send, with an IAM caller identity,
and the handler's proxy result becomes the HTTP answer. Invocations run one at a time, as in
one Lambda execution environment. IAM authentication is not emulated (as with `sam local`).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from ipass_local.lambda_context import LocalLambdaContext

LOCAL_CALLER_ARN = "arn:aws:iam::000000000000:user/local-developer"
ROUTES = ("/budget-updates", "/budget-updates/{requestId}")
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's own payload limit

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def proxy_event(method: str, path: str, headers: dict[str, str], body: bytes, caller: str) -> dict[str, Any]:
    resource, path_parameters = _route(path)
    try:
        text: str | None = body.decode("utf-8") if body else None
        encoded = False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/local{path}",
            "stage": "local",
            "requestId": str(uuid.uuid4()),
            "identity": {"userArn": caller, "caller": caller.rsplit("/", 1)[-1], "accountId": "000000000000"},
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def _route(path: str) -> tuple[str, dict[str, str] | None]:
    if path == "/budget-updates":
        return path, None
    prefix = "/budget-updates/"
    if path.startswith(prefix) and "/" not in path[len(prefix) :] and len(path) > len(prefix):
        return ROUTES[1], {"requestId": unquote(path[len(prefix) :])}
    return path, None


class LocalApiGateway:
    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 3000, caller: str = LOCAL_CALLER_ARN):
        self._handler = handler
        self._lock = threading.Lock()
        self._caller = caller
        gateway = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._invoke("GET")

            def do_POST(self) -> None:
                self._invoke("POST")

            def do_PUT(self) -> None:
                self._invoke("PUT")

            def do_DELETE(self) -> None:
                self._invoke("DELETE")

            def __getattr__(self, name: str) -> Callable[[], None]:
                # Any other method (PATCH, OPTIONS, HEAD, TRACE, QUERY, ...) reaches the handler too,
                # which answers 405 on its routes; without this http.server answers 501 with HTML.
                if name.startswith("do_"):
                    return lambda: self._invoke(self.command)
                raise AttributeError(name)

            def _invoke(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {}, b'{"message":"Request Too Long"}')
                    return
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                event = proxy_event(method, path, dict(self.headers.items()), body, gateway._caller)
                result = gateway.invoke(event)
                payload = result.get("body") or ""
                raw = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode("utf-8")
                self._send(int(result.get("statusCode", 502)), result.get("headers") or {}, raw)

            def _send(self, status: int, headers: dict[str, str], raw: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, str(value))
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                if self.command != "HEAD":  # a HEAD answer has headers only
                    self.wfile.write(raw)

        self._server = ThreadingHTTPServer((host, port), RequestHandler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            try:
                return self._handler(event, LocalLambdaContext())
            except Exception as exc:  # API Gateway answers 502 when the integration fails
                body = json.dumps({"message": "Internal server error", "error": type(exc).__name__})
                return {"statusCode": 502, "headers": {"Content-Type": "application/json"}, "body": body}

    def start(self) -> LocalApiGateway:
        # serve_forever checks for shutdown between polls: 50 ms instead of 0.5 s makes stop() prompt.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
