"""``ipass-sandbox``: run the AlipayHK stand-in until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from ipass_sandbox.config import (
    CONFIG_FILE_NAME,
    DEFAULT_STATE_DIR,
    DEMO_CLIENT_ID,
    DEMO_MERCHANT_ACCOUNT_ID,
    SECRET_FILE_NAME,
    SandboxConfig,
    SandboxConfigError,
    demo_config,
    load_config,
)
from ipass_sandbox.server import SandboxServer

DEFAULT_PORT = 8780


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ipass-sandbox",
        description=(
            "A local stand-in for AlipayHK's updateBudget API: verifies request signatures, applies "
            "the budget rules, remembers requestIds, signs its answers, and injects faults on demand "
            "(see docs/sandbox.md)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to listen on, 0 = any (default: %(default)s)"
    )
    parser.add_argument("--config", type=Path, help="sandbox config JSON (contract section 6); default: demo set-up")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help=(
            f"where the demo set-up ({CONFIG_FILE_NAME}, {SECRET_FILE_NAME}) is generated or reused "
            "when --config is not given (default: %(default)s)"
        ),
    )
    parser.add_argument("--log-level", default="WARNING", help="log level of the access log (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = _load(args.config, args.state_dir)
        server = SandboxServer(config, args.host, args.port)
    except SandboxConfigError as exc:
        print(f"ipass-sandbox: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ipass-sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with server:
        print(f"ipass-sandbox: listening on {server.url} (Ctrl-C to stop)", flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(1.0):
            pass
    print("ipass-sandbox: stopped", flush=True)
    return 0


def _load(config_path: Path | None, state_dir: Path) -> SandboxConfig:
    if config_path is not None:
        config = load_config(config_path)
        print(f"ipass-sandbox: config {config_path.resolve()}", flush=True)
        return config
    directory = state_dir.resolve()
    reused = (directory / CONFIG_FILE_NAME).is_file() and (directory / SECRET_FILE_NAME).is_file()
    config, secret_path = demo_config(directory)
    print(f"ipass-sandbox: {'reusing' if reused else 'generated'} demo set-up in {directory}", flush=True)
    print(f"  config:         {directory / CONFIG_FILE_NAME}", flush=True)
    print(
        f"  signing secret: {secret_path} (Client-Id {DEMO_CLIENT_ID}, merchantAccountId {DEMO_MERCHANT_ACCOUNT_ID})",
        flush=True,
    )
    templates = ", ".join(template.template_code for template in config.templates)
    print(f"  templates:      {templates}", flush=True)
    return config


if __name__ == "__main__":
    sys.exit(main())
