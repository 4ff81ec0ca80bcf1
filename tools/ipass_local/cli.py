"""`ipass-local`: bring up the service locally on embedded defaults and print how to call it."""

from __future__ import annotations

import argparse
import signal
import threading
import warnings
from pathlib import Path

from ipass_local.stack import LocalStack, LocalStackSettings


def usage_text(api: str, sandbox: str) -> str:
    post = f"curl -s -X POST {api}/budget-updates -H 'Content-Type: application/json'"
    return f"""
ipass-budget is running locally (moto server for DynamoDB and Secrets Manager, the AlipayHK sandbox).
  API      {api}
  sandbox  {sandbox}

Append 100 to DEMO-VALID's budget:
  {post} -d '{{"requestId":"demo-1","templateCode":"DEMO-VALID","updateType":"APPEND_BUDGET","number":100}}'
Subtract 50:
  {post} -d '{{"requestId":"demo-2","templateCode":"DEMO-VALID","updateType":"SUBTRACT_BUDGET","number":50}}'
Replay demo-1 (the stored answer, "replayed": true; the budget does not change again):
  {post} -d '{{"requestId":"demo-1","templateCode":"DEMO-VALID","updateType":"APPEND_BUDGET","number":100}}'
Status of demo-1 from the ledger:
  curl -s {api}/budget-updates/demo-1
The budget in the sandbox:
  curl -s {sandbox}/__sandbox/templates/DEMO-VALID

Ctrl-C stops everything.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ipass-local", description=__doc__)
    parser.add_argument("--port", type=int, default=3000, help="local API port (default 3000)")
    parser.add_argument("--sandbox-port", type=int, default=8780, help="sandbox port (default 8780)")
    parser.add_argument("--state-dir", type=Path, default=Path(".local"), help="where demo keys are kept")
    args = parser.parse_args(argv)
    settings = LocalStackSettings(state_dir=args.state_dir, api_port=args.port, sandbox_port=args.sandbox_port)
    # Powertools warns on each invocation that adds no metric (a GET); locally that is only noise.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    stopping = threading.Event()
    # Explicit handlers: a shell may start us with SIGINT ignored, and Ctrl-C must still stop us.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with LocalStack(settings) as stack:
        assert stack.api is not None  # noqa: S101 - set by start()
        assert stack.sandbox is not None  # noqa: S101
        print(usage_text(stack.api.url, stack.sandbox.url), flush=True)
        print(f"Signing secret (demo keys, local only): {stack.secret_path}", flush=True)
        stopping.wait()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
