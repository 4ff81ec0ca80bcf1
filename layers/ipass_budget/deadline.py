"""Deadlines for AWS SDK calls: botocore starts no attempt that could end past the caller's limit.

botocore bounds each attempt by its connect and read timeouts and retries on its own, but knows
nothing of the Lambda deadline. ``bound_attempts(client)`` adds a ``before-send`` check to a
client: inside ``aws_calls_until(limit)`` an attempt (the first or a retry) whose worst case
(connect + read timeout) would end after ``limit`` is not started and raises
``DeadlineReachedError``, a BotoCoreError that botocore does not retry. Outside such a block
(e.g. the operator CLI) nothing changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError

_limit: ContextVar[float | None] = ContextVar("ipass_budget_aws_limit", default=None)


class DeadlineReachedError(BotoCoreError):
    fmt = "no time left for another AWS attempt before the deadline"


def attempt_seconds(config: Config) -> float:
    """The longest one attempt can take: connect timeout + read timeout."""
    options: Any = config  # botocore sets Config's options as instance attributes at run time
    return float(options.connect_timeout) + float(options.read_timeout)


@contextmanager
def aws_calls_until(limit: float) -> Iterator[None]:
    """AWS attempts made inside this block end by ``limit`` (a time.monotonic() value)."""
    token = _limit.set(limit)
    try:
        yield
    finally:
        _limit.reset(token)


def bound_attempts(client: Any, clock: Any = time.monotonic) -> None:
    """Install the deadline check on one boto3 client (its own event system, not the session's)."""
    worst = attempt_seconds(client.meta.config)

    def check(**_kwargs: Any) -> None:
        limit = _limit.get()
        if limit is not None and clock() + worst > limit:
            raise DeadlineReachedError()
        # None: botocore sends the request itself (a value here would replace the HTTP response).

    client.meta.events.register("before-send", check, unique_id="ipass-budget-deadline")
