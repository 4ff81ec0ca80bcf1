"""Simultaneous duplicates in separate processes (separate Lambda environments) reach AlipayHK once.

moto runs as its own single-threaded server process, so its conditional writes are as atomic as
DynamoDB's; in-process moto is not (see serverless-notes 3.8).
"""

from __future__ import annotations

import json
import multiprocessing
from typing import Any

from ipass_local.api_gateway import LOCAL_CALLER_ARN, proxy_event
from tests.service.support import ServiceEnv, new_id, update
from tests.service.workers import invoke_after_barrier


def run_simultaneously(env: ServiceEnv, event: dict[str, Any], processes: int) -> list[tuple[str, Any]]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=invoke_after_barrier, args=(env.environ, event, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    return outcomes


def test_eight_identical_requests_at_once_reach_alipay_once(service_env: ServiceEnv) -> None:
    request_id = new_id()
    before = service_env.budget()
    body = json.dumps(update(request_id, 25)).encode()
    event = proxy_event("POST", "/budget-updates", {"Content-Type": "application/json"}, body, LOCAL_CALLER_ARN)

    outcomes = run_simultaneously(service_env, event, processes=8)

    answers = [(result["statusCode"], json.loads(result["body"])) for kind, result in outcomes if kind == "ok"]
    assert len(answers) == 8
    fresh = [body for status, body in answers if status == 200 and body["replayed"] is False]
    assert len(fresh) == 1
    assert fresh[0]["outcome"] == "SUCCEEDED"
    for status, body in answers:
        # Every other caller was told to wait (409) or got the stored success (200, replayed).
        assert (
            (status, body.get("error", {}).get("code")) == (409, "REQUEST_IN_PROGRESS")
            or (status == 200 and body["replayed"] is True and body["outcome"] == "SUCCEEDED")
            or body is fresh[0]
        )
    assert service_env.arrivals(request_id) == 1
    assert service_env.budget() == before + 25


def test_a_schedule_delivered_twice_at_once_changes_the_budget_once(service_env: ServiceEnv) -> None:
    before = service_env.budget()
    event = {
        "templateCode": "DEMO-VALID",
        "updateType": "APPEND_BUDGET",
        "number": 40,
        "schedule": {
            "arn": "arn:aws:scheduler:us-east-1:000000000000:schedule/default/race",
            "scheduledTime": f"2026-12-04T09:00:00Z#{new_id()}",
        },
    }

    outcomes = run_simultaneously(service_env, event, processes=2)

    kinds = sorted(kind for kind, _ in outcomes)
    # One delivery applies it; the other either replays it or is refused while it is in flight,
    # and then raises so that Lambda retries it later.
    assert kinds in (["ok", "ok"], ["ok", "raised"])
    assert service_env.budget() == before + 40
    bodies = [result for kind, result in outcomes if kind == "ok"]
    assert all(body["outcome"] == "SUCCEEDED" for body in bodies)
    assert sum(body["replayed"] is False for body in bodies) == 1
