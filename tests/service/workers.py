"""Code that runs in separate processes for the race tests: one process, one Lambda environment."""

from __future__ import annotations

import os
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from ipass_local.handler import load_handler_module
from ipass_local.lambda_context import LocalLambdaContext


def invoke_after_barrier(environ: dict[str, str], event: dict[str, Any], barrier: Barrier, results: Queue[Any]) -> None:
    """Import the handler (a cold start), wait for every sibling, then invoke it once."""
    os.environ.update(environ)
    module = load_handler_module()
    module.budget_service()  # build clients before the barrier so the invocations really overlap
    barrier.wait(timeout=60)
    try:
        results.put(("ok", module.lambda_handler(event, LocalLambdaContext())))
    except Exception as exc:  # the schedule path raises on outcomes that are not final
        results.put(("raised", f"{type(exc).__name__}: {exc}"))
