"""Code that runs in a child process (one Lambda execution environment) and dies at a chosen step.

The crash is ``os._exit(137)`` (what a SIGKILL'd process reports): no ``finally`` block, no
atexit handler, no buffered write survives, as when Lambda kills an invocation. It is installed
here by wrapping the domain's own methods in the child only; production code has no crash hooks.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from multiprocessing.synchronize import Event
from typing import Any

from ipass_budget.ledger import Ledger
from ipass_local.handler import load_handler_module
from ipass_local.lambda_context import LocalLambdaContext

KILLED = 137

# Where the process dies, by step boundary (README "Request ledger").
STEPS = ("before_claim", "after_claim", "after_alipay_answered", "while_alipay_applies")


def _die(*_args: Any, **_kwargs: Any) -> Any:
    os._exit(KILLED)


def _then_die(method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        method(*args, **kwargs)
        os._exit(KILLED)

    return wrapper


def invoke_and_die(environ: dict[str, str], event: dict[str, Any], step: str, kill: Event) -> None:
    os.environ.update(environ)
    module = load_handler_module()
    if step == "before_claim":  # the secret is loaded, the claim is not written
        Ledger.claim = _die  # type: ignore[method-assign]
    elif step == "after_claim":  # the claim (the write-ahead SENDING item) is written, nothing sent
        Ledger.claim = _then_die(Ledger.claim)  # type: ignore[method-assign]
    elif step == "after_alipay_answered":  # AlipayHK answered; the final ledger write never happens
        Ledger.finish = _die  # type: ignore[method-assign]
    elif step == "while_alipay_applies":  # the parent kills us once AlipayHK has applied, before it answers
        threading.Thread(target=lambda: kill.wait(60) and _die(), daemon=True).start()
    else:
        raise ValueError(step)
    module.lambda_handler(event, LocalLambdaContext())
    # Reaching this line means the step was never reached: the parent sees exit code 0, not 137.
