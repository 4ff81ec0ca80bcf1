"""The sandbox HTTP server: stdlib ThreadingHTTPServer, HTTP/1.1 keep-alive, stoppable from any thread.

Usable in-process (tests, benchmarks)::

    with SandboxServer(config) as sandbox:      # port 0: the OS picks a free port
        client = AlipayClient(sandbox.url)
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import urlsplit

from ipass_budget import UPDATE_BUDGET_PATH
from ipass_sandbox.admin import ADMIN_PREFIX, AdminEndpoints
from ipass_sandbox.answers import AnswerSigner
from ipass_sandbox.config import SandboxConfig
from ipass_sandbox.exchange import Reply, Request, error_reply
from ipass_sandbox.gateway import UpdateBudgetEndpoint
from ipass_sandbox.state import SandboxState

logger = logging.getLogger("ipass_sandbox")

MAX_BODY_BYTES = 64 * 1024
# Idle keep-alive connections are closed after this long, so abandoned clients do not pin threads.
IDLE_TIMEOUT_SECONDS = 120.0
STOP_JOIN_SECONDS = 5.0


class SandboxServer:
    def __init__(self, config: SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.state = SandboxState(config)
        self._gateway = UpdateBudgetEndpoint(self.state, AnswerSigner(config.sandbox_private_key()))
        self._admin = AdminEndpoints(self.state)
        # Set by stop(): wakes handlers that wait in an injected delay.
        self.stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), self)
        # stop() writes to this pair to wake the accept loop at once (serve_forever would poll).
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        with self._lifecycle:
            if self._thread is not None or self.stopping.is_set():
                raise RuntimeError("a SandboxServer can be started once")
            self._thread = threading.Thread(
                target=self._accept_loop,
                name=f"ipass-sandbox:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close open connections, release the port. Idempotent; never waits on clients."""
        with self._lifecycle:
            if self.stopping.is_set():
                return
            self.stopping.set()
            self._wake_writer.send(b"x")
            if self._thread is not None:
                self._thread.join(STOP_JOIN_SECONDS)
            self._httpd.close_connections()
            self._httpd.server_close()
            self._wake_reader.close()
            self._wake_writer.close()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._httpd, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self.stopping.is_set():
                ready = selector.select()
                if self.stopping.is_set():
                    break
                if any(key.fileobj is self._httpd for key, _ in ready):
                    # The listening socket is readable, so this accepts without blocking.
                    self._httpd.handle_request()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def route(self, request: Request) -> Reply:
        if request.path == UPDATE_BUDGET_PATH:
            return self._gateway.handle(request)
        if request.path.startswith(ADMIN_PREFIX):
            return self._admin.handle(request)
        return error_reply(404, f"no such path: {request.path[:200]}")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # stop() closes connections itself; the default join would wait for idle keep-alive clients.
    block_on_close = False
    allow_reuse_address = True
    # socketserver's default listen backlog of 5 drops connections when many clients connect at once
    # (benchmarks, concurrency tests); the kernel caps this at somaxconn anyway.
    request_queue_size = 128
    # Bounds handle_request()'s own wait in the rare case a connection vanishes between our select
    # and its accept (the accept loop then just goes round again).
    timeout = 0.5

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host up with getfqdn(), a reverse-DNS query that can
        # stall start-up for seconds on hosts without DNS; the name is not used by the sandbox.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        self.sandbox.state.count_connection()
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut open connections down, which ends handler threads blocked reading the next request."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up mid-answer (e.g. after its read timeout) is routine, not a crash.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real gateway
    server_version = "ipass-sandbox"
    timeout = IDLE_TIMEOUT_SECONDS
    # Headers and body leave in two writes; with Nagle on, the body waits for the client's delayed
    # ACK (about 40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True

    @property
    def _sandbox(self) -> SandboxServer:
        return cast(_HTTPServer, self.server).sandbox

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _serve(self, head: bool = False) -> None:
        request = self._read_request()
        if request is None:
            return
        try:
            reply = self._sandbox.route(request)
        except Exception:
            logger.exception("sandbox failed to handle %s %s", request.method, request.path[:200])
            reply = error_reply(500, "internal sandbox error")
        if reply.delay > 0 and self._sandbox.stopping.wait(reply.delay):
            reply = Reply(0, drop=True)  # stopping: give up the answer instead of delaying shutdown
        if reply.drop:
            self._drop()
        else:
            self._send(reply, head)

    def _read_request(self) -> Request | None:
        if self.headers.get("Transfer-Encoding"):
            self._send(error_reply(501, "chunked request bodies are not supported; send Content-Length", close=True))
            return None
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0:
            self._send(error_reply(400, "Content-Length is not a valid length", close=True))
            return None
        if length > MAX_BODY_BYTES:
            self._send(error_reply(413, f"request body over {MAX_BODY_BYTES} bytes", close=True))
            return None
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client hung up mid-body
            self.close_connection = True
            return None
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), value)
        return Request(self.command, _origin_form(self.path), headers, body)

    def _send(self, reply: Reply, head: bool = False) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if reply.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not head:
            self.wfile.write(reply.body)

    def _drop(self) -> None:
        """Close without answering; the client reads EOF (or a reset), never waits for an answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def version_string(self) -> str:
        return self.server_version  # without the default's Python version

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines and status codes only: headers (and so signatures) are never logged.
        logger.info("%s %s", self.address_string(), format % args)


def _origin_form(target: str) -> str:
    """The request target as path[?query]; absolute-form targets (``http://host/path``) are reduced."""
    if target.startswith("/"):
        return target
    parts = urlsplit(target)
    return parts.path + (f"?{parts.query}" if parts.query else "")
