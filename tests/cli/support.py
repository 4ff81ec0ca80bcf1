"""Helpers for the CLI tests: running ``main`` in-process, a recording HTTP server, a SigV4 checker."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit

import pytest

from ipass_budget_cli.cli import main


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def printed_request_id(self) -> str:
        """The requestId the update command announced on stderr before calling."""
        match = re.search(r"^requestId: (\S+)", self.err, re.MULTILINE)
        assert match, self.err
        return match.group(1)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return CliResult(int(code), out, err)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"requestId":"r","outcome":"SUCCEEDED","replayed":false}'
    content_type: str = "application/json"


@dataclass
class RecordingServer:
    """Answers every request with ``reply`` and keeps what it received."""

    reply: Reply = field(default_factory=Reply)
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._record("GET")

            def do_POST(self) -> None:
                self._record("POST")

            def _record(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.requests.append(Recorded(method, self.path, dict(self.headers.items()), body))
                reply = recorder.reply
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def expected_sigv4_signature(recorded: Recorded, secret_key: str, region: str, service: str = "execute-api") -> str:
    """SigV4 computed here from the request as received (independently of botocore's signer)."""
    authorization = recorded.headers["Authorization"]
    signed_headers = re.search(r"SignedHeaders=([^,]+)", authorization)
    assert signed_headers
    names = signed_headers.group(1).split(";")
    lower = {k.lower(): v for k, v in recorded.headers.items()}
    amz_date = lower["x-amz-date"]
    path = urlsplit(recorded.path).path
    canonical = "\n".join(
        [
            recorded.method,
            quote(path, safe="/~"),  # non-S3 services: the (already encoded) path is encoded once more
            "",
            "".join(f"{name}:{' '.join(lower[name].split())}\n" for name in names),
            ";".join(names),
            hashlib.sha256(recorded.body).hexdigest(),
        ]
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret_key}".encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
