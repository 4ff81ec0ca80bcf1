"""moto in server mode, one request at a time, in a child process.

moto's conditional writes are not atomic across threads, so a threaded server can let two
"conditional" claims through where DynamoDB would let one. Serving requests one at a time gives
DynamoDB's per-item atomicity, which the ledger's race tests depend on.
"""

from __future__ import annotations

import argparse
import logging
import subprocess  # nosec B404  # starts only our own moto server module, see start()
import sys
from types import TracebackType

READY = "MOTO-READY"


class MotoServerProcess:
    """``with MotoServerProcess() as moto: moto.url`` starts a private server on a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServerProcess:
        self._process = subprocess.Popen(  # noqa: S603  # nosec B603  # our own module, fixed arguments
            [sys.executable, "-m", "ipass_local.moto_server", "--host", self.host, "--port", str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        # Blocks until the child has bound its socket and printed the port: no polling, no sleeps.
        line = self._process.stdout.readline() if self._process.stdout else ""
        if not line.startswith(READY):
            self.stop()
            raise RuntimeError("moto server did not start")
        self.port = int(line.split()[1])
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            if self._process.stdout:
                self._process.stdout.close()
            self._process = None

    def __enter__(self) -> MotoServerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(host: str, port: int) -> None:
    # Imported here: only the child process needs moto, and importing it takes about a second.
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(host, port, app, threaded=False, request_handler=MotoRequestHandler)
    print(f"{READY} {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="moto server, serving one request at a time")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
