"""What the function sends to X-Ray, with tracing active as deployed (Tracing: Active).

The handler runs in a fresh interpreter (the X-Ray patches are process-wide and chosen at import)
with the variables the Lambda runtime sets, against moto server and the sandbox; a UDP socket plays
the X-Ray daemon and receives every segment document.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from ipass_local.handler import HANDLER_PATH
from ipass_local.template import REPO_ROOT
from tests.service.support import ServiceEnv, new_id

DONE = b"invoker done"

# Invokes the handler once per request body given in argv[1] (JSON list), each invocation with its
# own sampled trace header, as the Lambda runtime sets it; prints each status code; then sends
# argv[2] to the daemon, after everything X-Ray sent.
INVOKER = r"""
import json, os, socket, sys
from ipass_local.api_gateway import LOCAL_CALLER_ARN, proxy_event
from ipass_local.handler import load_handler_module
from ipass_local.lambda_context import LocalLambdaContext

handler = load_handler_module()
for number, body in enumerate(json.loads(sys.argv[1]), 1):
    os.environ["_X_AMZN_TRACE_ID"] = f"Root=1-6750a000-{number:024x};Parent={number:016x};Sampled=1"
    event = proxy_event("POST", "/budget-updates", {"Content-Type": "application/json"},
                        json.dumps(body).encode(), LOCAL_CALLER_ARN)
    print(handler.lambda_handler(event, LocalLambdaContext())["statusCode"])
host, port = os.environ["AWS_XRAY_DAEMON_ADDRESS"].split(":")
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as done:
    done.sendto(sys.argv[2].encode(), (host, int(port)))
"""


@pytest.fixture
def xray_daemon() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        yield receiver


def invoke_traced(
    service_env: ServiceEnv, daemon: socket.socket, bodies: list[dict[str, Any]], **settings: str
) -> list[dict[str, Any]]:
    """Run the bodies through a traced handler; return the subsegment documents X-Ray received."""
    host, port = daemon.getsockname()
    env = {name: value for name, value in service_env.environ.items() if name != "POWERTOOLS_TRACE_DISABLED"}
    env |= {
        "PATH": "/usr/bin:/bin",
        "LAMBDA_TASK_ROOT": str(HANDLER_PATH.parent),  # the Tracer is active only inside Lambda
        "AWS_LAMBDA_FUNCTION_NAME": "UpdateBudgetFunction",
        "AWS_XRAY_DAEMON_ADDRESS": f"{host}:{port}",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        **settings,
    }
    run = subprocess.run(
        [sys.executable, "-c", INVOKER, json.dumps(bodies), DONE.decode()],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    statuses = [line for line in run.stdout.splitlines() if line.isdigit()]
    assert statuses == ["200"] * len(bodies), run.stdout[-2000:]
    daemon.settimeout(10)  # the invoker has exited: its DONE is on its way or already queued
    documents = []
    while (datagram := daemon.recv(65536)) != DONE:
        header, _, document = datagram.decode("utf-8").partition("\n")
        assert json.loads(header) == {"format": "json", "version": 1}
        documents.append(json.loads(document))
    return documents


def names(documents: list[dict[str, Any]]) -> Counter[str]:
    """Subsegment names, AWS ones as service.Operation."""
    found: Counter[str] = Counter()
    for document in documents:
        operation = document.get("aws", {}).get("operation")
        found[f"{document['name']}.{operation}" if operation else document["name"]] += 1
    return found


def body(request_id: str) -> dict[str, Any]:
    return {"requestId": request_id, "templateCode": "DEMO-VALID", "updateType": "APPEND_BUDGET", "number": 1}


def test_by_default_only_the_alipayhk_call_is_traced(service_env: ServiceEnv, xray_daemon: socket.socket) -> None:
    request = body(new_id())

    documents = invoke_traced(service_env, xray_daemon, [request, request])  # a new request, its replay

    alipay = service_env.sandbox.url.split("//", 1)[1].split(":", 1)[0]
    assert names(documents) == Counter({alipay: 1})  # the replay sends nothing, so records nothing
    (call,) = documents
    assert call["http"]["request"]["method"] == "POST"
    assert call["http"]["request"]["url"].endswith("/api/open/alipay/v1/ipass/template/manage/updateBudget")
    assert call["http"]["response"]["status"] == 200
    # a child of the function segment Lambda records (the Parent of the first invocation's header)
    assert (call["trace_id"], call["parent_id"]) == ("1-6750a000-000000000000000000000001", f"{1:016x}")


def test_trace_aws_calls_adds_a_subsegment_per_dynamodb_and_secrets_manager_call(
    service_env: ServiceEnv, xray_daemon: socket.socket
) -> None:
    request = body(new_id())

    documents = invoke_traced(service_env, xray_daemon, [request, request], TRACE_AWS_CALLS="true")

    found = names(documents)
    assert found["dynamodb.PutItem"] == 2  # both claims; the replay's is refused
    assert found["dynamodb.UpdateItem"] == 1  # the outcome
    assert found["secretsmanager.GetSecretValue"] == 1  # once per execution environment
    assert sum(found.values()) == 5  # and the AlipayHK call
    refused = [d for d in documents if d.get("aws", {}).get("operation") == "PutItem" and d.get("error")]
    assert len(refused) == 1
    (exception,) = refused[0]["cause"]["exceptions"]
    assert exception["type"] == "ConditionalCheckFailedException"
    assert not exception.get("stack")  # max_trace_back = 0: no stack copied per replay


@pytest.mark.parametrize("trace_aws_calls", ["false", "true"])
def test_traces_hold_no_key_signature_or_secret(
    service_env: ServiceEnv, xray_daemon: socket.socket, trace_aws_calls: str
) -> None:
    request = body(new_id())

    documents = invoke_traced(service_env, xray_daemon, [request, request], TRACE_AWS_CALLS=trace_aws_calls)

    text = json.dumps(documents)
    assert documents
    assert "PRIVATE KEY" not in text
    for name in ("privateKey", "alipayPublicKey"):
        key_body = "".join(line for line in service_env.secret[name].splitlines() if "-----" not in line)
        assert key_body[64:128] not in text, name
    assert "signature=" not in text.lower()
    assert "SecretString" not in text
