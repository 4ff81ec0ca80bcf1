"""No private key, request signature or signing secret in any log line, answer, exception or ledger item.

One full run through the real handler (moto server and the sandbox behind it): successes, replays,
every refusal, UNKNOWN outcomes under each sandbox fault, key rejections, misconfigured secrets
(including a key pasted into the wrong field), a rotation, schedule invocations and unavailable
dependencies. Everything the run leaves behind is collected: every logging record (our loggers at
DEBUG, everything else at INFO), the Powertools JSON lines as written, stdout and stderr, the
answers (status, headers, body), raised exceptions with their tracebacks, and the ledger items.
None of it may contain:

- a PEM marker, a private key's base64 body, or any 40-character piece of it (whatever the line
  breaks or JSON escaping);
- a request's Signature header, its percent-encoded or base64 signature, a 40-character piece of
  that, or the signature bytes in hex;
- the signing secret's JSON, or its private field (privateKey).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import quote, unquote

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget.keys import load_private_key, private_key_pem, public_key_pem
from ipass_budget.ledger import Ledger
from ipass_budget.models import BudgetUpdate, UpdateType
from ipass_budget.schedule import schedule_request_id
from ipass_budget.signing import sign_request
from ipass_local.api_gateway import LOCAL_CALLER_ARN, proxy_event
from ipass_local.lambda_context import LocalLambdaContext
from ipass_sandbox.config import DEMO_CLIENT_ID, DEMO_MERCHANT_ACCOUNT_ID
from tests.reliability_log import record
from tests.service.support import ServiceEnv, new_id, update

WINDOW = 40
PEM_MARKERS = ("-----BEGIN", "-----END", "PRIVATE KEY-----")
SERVICE_LOGGER = "ipass-budget"  # POWERTOOLS_SERVICE_NAME: the handler's Powertools logger
OUR_LOGGERS = (SERVICE_LOGGER, "ipass_budget", "update_budget_app")
FAULTS = (
    "CORRUPT_SIGNATURE",
    "UNSIGNED_SUCCESS",
    "PARTLY_SIGNED",
    "U_BEFORE_APPLY",
    "U_AFTER_APPLY",
    "HTTP_500_AFTER_APPLY",
    "HTTP_503_BEFORE_APPLY",
    "DROP_BEFORE_APPLY",
    "DROP_AFTER_APPLY",
    "TRAFFIC_LIMIT",
)


def pem_body(pem: str) -> str:
    """The base64 between a PEM's BEGIN and END lines, without line breaks."""
    return "".join(line for line in pem.strip().splitlines() if not line.startswith("-----"))


def normalise(text: str) -> str:
    """Undo the ways a value is reshaped on its way into a log line: line breaks and JSON escapes."""
    for escaped in ("\\r", "\\n", "\r", "\n", "\\/"):
        text = text.replace(escaped, "/" if escaped == "\\/" else "")
    return text


@dataclass
class Forbidden:
    """What must never be written: whole values, and every ``WINDOW``-character piece of long ones."""

    values: dict[str, str] = field(default_factory=dict)
    pieces: dict[str, str] = field(default_factory=dict)

    def add(self, label: str, value: str, *, pieces: bool = False) -> None:
        self.values[normalise(value)] = label
        if pieces:
            flat = normalise(value)
            for start in range(len(flat) - WINDOW + 1):
                self.pieces.setdefault(flat[start : start + WINDOW], label)

    def add_key(self, label: str, key: rsa.RSAPrivateKey) -> None:
        pem = private_key_pem(key)
        self.add(f"{label} PEM", pem)
        self.add(f"{label} base64 body", pem_body(pem), pieces=True)

    def add_signature_header(self, header: str) -> None:
        self.add("Signature header", header)
        encoded = header.rsplit("signature=", 1)[1]
        signature_b64 = unquote(encoded)
        self.add("signature (percent-encoded)", encoded, pieces=True)
        self.add("signature (base64)", signature_b64, pieces=True)
        self.add("signature (hex)", base64.b64decode(signature_b64).hex(), pieces=True)

    def leaks(self, text: str) -> list[str]:
        flat = normalise(text)
        found = [f"{marker!r} (PEM marker)" for marker in PEM_MARKERS if marker in flat]
        found += [label for value, label in self.values.items() if value and value in flat]
        for start in range(len(flat) - WINDOW + 1):
            label = self.pieces.get(flat[start : start + WINDOW])
            if label:
                found.append(f"a {WINDOW}-character piece of the {label} at {start}")
                break
        return found


class RecordCollector(logging.Handler):
    """Keeps every record it sees: the formatted message, the traceback and every extra attribute."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        extras = {key: value for key, value in vars(record).items() if key not in ("msg", "args", "exc_info")}
        text = json.dumps(extras, default=repr, ensure_ascii=False)
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        self.lines.append(f"{record.name} {record.levelname} {message} {text}")


@dataclass
class Run:
    """The handler, its deployment, and everything the run produced."""

    handler: ModuleType
    env: ServiceEnv
    collector: RecordCollector
    stream: io.StringIO
    answers: list[str] = field(default_factory=list)
    raised: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    def call(self, label: str, method: str, path: str, body: Any = None, *, raw: bytes | None = None) -> int:
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
        event = proxy_event(method, path, {"Content-Type": "application/json"}, data, LOCAL_CALLER_ARN)
        result = self.handler.lambda_handler(event, LocalLambdaContext())
        self.answers.append(json.dumps(result["headers"]) + result["body"])
        status = int(result["statusCode"])
        self.statuses[label] = status
        return status

    def post(self, label: str, body: Any) -> int:
        return self.call(label, "POST", "/budget-updates", body)

    def schedule(self, label: str, event: dict[str, Any]) -> None:
        try:
            answer = self.handler.lambda_handler(event, LocalLambdaContext())
            self.answers.append(json.dumps(answer))
            self.statuses[label] = 200
        except Exception as exc:  # the schedule path raises on purpose when the outcome is not final
            self.raised.append("".join(traceback.format_exception(exc)))
            self.statuses[label] = -1

    def reconfigure(self) -> None:
        """A fresh execution environment: the secret and settings are read again."""
        self.handler.budget_service.cache_clear()


@pytest.fixture
def run(handler: ModuleType, service_env: ServiceEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """Collect every log record (ours at DEBUG, others at INFO) and the Powertools output stream."""
    collector = RecordCollector()
    stream = io.StringIO()
    root = logging.getLogger()
    service_logger = logging.getLogger(SERVICE_LOGGER)
    for stream_handler in service_logger.handlers:
        if isinstance(stream_handler, logging.StreamHandler):
            monkeypatch.setattr(stream_handler, "stream", stream)
    levels = {name: logging.getLogger(name).level for name in (*OUR_LOGGERS, "")}
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.setLevel(logging.INFO)
    root.addHandler(collector)
    if not service_logger.propagate:
        service_logger.addHandler(collector)
    try:
        yield Run(handler, service_env, collector, stream)
    finally:
        root.removeHandler(collector)
        service_logger.removeHandler(collector)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _schedule_event(number: int, template: str = "DEMO-VALID", **extra: Any) -> dict[str, Any]:
    schedule = {"arn": "arn:aws:scheduler:ap-east-1:123456789012:schedule/default/s", "scheduledTime": new_id()}
    return {"templateCode": template, "updateType": "APPEND_BUDGET", "number": number, "schedule": schedule, **extra}


def _full_run(run: Run, monkeypatch: pytest.MonkeyPatch, spare_key: rsa.RSAPrivateKey, port: int) -> None:
    """Every path through the handler that touches the secret, the signature or an error."""
    _answers_and_refusals(run)
    _unknown_outcomes(run)
    _key_rejections_and_bad_secrets(run, spare_key)
    _schedules(run)
    _timeouts_and_unavailable_dependencies(run, monkeypatch, port)


def _answers_and_refusals(run: Run) -> None:
    env = run.env
    first = new_id()
    run.post("success", update(first, 1))
    run.post("replay", update(first, 1))
    run.post("request id reused", update(first, 2))
    run.post("invalid input", {"requestId": "a b", "number": "1", "privateKey": "x"})
    run.call("unparsable", "POST", "/budget-updates", raw=b'{"number": NaN')
    run.call("too large", "POST", "/budget-updates", raw=b" " * 20_000)
    run.post("param illegal", update(new_id(), 11, template="DEMO-FULL"))
    run.post("no such template", update(new_id(), 1, template="NOPE"))
    run.post("template closed", update(new_id(), 1, template="DEMO-CLOSED"))
    in_flight = new_id()
    claimed = BudgetUpdate(in_flight, DEMO_MERCHANT_ACCOUNT_ID, "DEMO-VALID", UpdateType.APPEND_BUDGET, 5)
    Ledger(env.dynamodb(), env.table_name).claim(claimed, "arn:aws:iam::000000000000:user/o", "api", lease_seconds=60)
    run.post("in progress", update(in_flight, 5))
    run.call("get record", "GET", f"/budget-updates/{first}")
    run.call("get missing", "GET", "/budget-updates/never-seen")
    run.call("get invalid", "GET", "/budget-updates/" + "x" * 200)
    run.call("unknown route", "DELETE", "/budget-updates")


def _unknown_outcomes(run: Run) -> None:
    env = run.env
    for fault in FAULTS:
        request_id = new_id()
        env.admin.add_fault(request_id, fault)
        run.post(f"fault {fault}", update(request_id, 1))
        env.admin.clear_faults()
        run.post(f"fault {fault}, called again", update(request_id, 1))


def _key_rejections_and_bad_secrets(run: Run, spare_key: rsa.RSAPrivateKey) -> None:
    env = run.env
    good_secret = dict(env.secret)
    # Key rejection: AlipayHK holds another public key for keyVersion 1, then keyVersion 7 is unknown.
    env.admin.register_key(DEMO_CLIENT_ID, "1", public_key_pem(spare_key))
    run.post("signature rejected", update(new_id(), 1))
    env.admin.register_key(DEMO_CLIENT_ID, "1", public_key_pem(_client_key(good_secret)))
    env.put_secret({**good_secret, "keyVersion": "7"})
    run.reconfigure()
    run.post("key not found", update(new_id(), 1))

    # Misconfigured secrets: a corrupted key, a key in the wrong fields, the key instead of JSON.
    pem = good_secret["privateKey"]
    body = pem_body(pem)
    broken = pem.replace(body[100:140], body[140:180])
    for label, secret in (
        ("corrupted private key", {**good_secret, "privateKey": broken}),
        ("private key in algorithm", {**good_secret, "algorithm": pem}),
        ("private key in clientId", {**good_secret, "clientId": pem}),
        ("private key in keyVersion", {**good_secret, "keyVersion": body}),
        ("public key as private key", {**good_secret, "privateKey": good_secret["alipayPublicKey"]}),
        ("private key as public key", {**good_secret, "alipayPublicKey": pem}),
        ("bare base64 body", {**good_secret, "privateKey": body[:-8]}),
        ("missing field", {k: v for k, v in good_secret.items() if k != "alipayPublicKey"}),
    ):
        env.put_secret(secret)
        run.reconfigure()
        run.post(f"misconfigured: {label}", update(new_id(), 1))
    env.put_secret(pem)  # the PEM itself as the SecretString
    run.reconfigure()
    run.post("misconfigured: secret is the PEM", update(new_id(), 1))

    # Rotation to a new key (keyVersion 2), then back.
    env.admin.register_key(DEMO_CLIENT_ID, "2", public_key_pem(spare_key))
    env.put_secret({**good_secret, "privateKey": private_key_pem(spare_key), "keyVersion": "2"})
    run.reconfigure()
    run.post("rotated key", update(new_id(), 1))
    env.put_secret(good_secret)
    run.reconfigure()


def _schedules(run: Run) -> None:
    body = pem_body(run.env.secret["privateKey"])
    run.schedule("schedule success", _schedule_event(1))
    run.schedule("schedule invalid", _schedule_event(0, surprise=body))
    run.schedule("schedule closed template", _schedule_event(1, template="DEMO-CLOSED"))
    unknown = _schedule_event(1)
    request_id = schedule_request_id(unknown["schedule"]["arn"], unknown["schedule"]["scheduledTime"])
    run.env.admin.add_fault(request_id, "U_AFTER_APPLY")
    run.schedule("schedule unknown outcome", unknown)


def _timeouts_and_unavailable_dependencies(run: Run, monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    env = run.env
    monkeypatch.setenv("IPASS_READ_TIMEOUT_SECONDS", "0.3")
    monkeypatch.setenv("IPASS_MAX_ATTEMPTS", "1")
    run.reconfigure()
    slow = new_id()
    env.admin.add_fault(slow, "DELAY_AFTER_APPLY", attempt=1, delay_seconds=2)
    run.post("timeout", update(slow, 1))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{port}")
    run.reconfigure()
    run.post("secrets manager down", update(new_id(), 1))
    monkeypatch.delenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{port}")
    run.reconfigure()
    run.post("dynamodb down", update(new_id(), 1))


def _client_key(secret: dict[str, str]) -> rsa.RSAPrivateKey:
    return load_private_key(secret["privateKey"])


def test_a_full_run_leaks_no_key_signature_or_secret(
    run: Run,
    service_env: ServiceEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sandbox_private_key: rsa.RSAPrivateKey,
    spare_private_key: rsa.RSAPrivateKey,
    unused_port: int,
) -> None:
    signatures: list[str] = []

    def signing_and_keeping(*args: Any, **kwargs: Any) -> dict[str, str]:
        headers = sign_request(*args, **kwargs)
        signatures.append(headers["Signature"])
        return headers

    monkeypatch.setattr("ipass_budget.client.sign_request", signing_and_keeping)
    secret = dict(service_env.secret)
    items_before = _ledger_text(service_env)

    _full_run(run, monkeypatch, spare_private_key, unused_port)

    forbidden = Forbidden()
    forbidden.add_key("client private key", _client_key(secret))
    forbidden.add_key("sandbox private key", sandbox_private_key)
    forbidden.add_key("rotated private key", spare_private_key)
    forbidden.add("signing secret JSON", json.dumps(secret))
    forbidden.add("signing secret JSON (compact)", json.dumps(secret, separators=(",", ":")))
    forbidden.add("signing secret privateKey field", secret["privateKey"])
    for header in signatures:
        forbidden.add_signature_header(header)
    out, err = capsys.readouterr()
    sources = {
        "log records": "\n".join(run.collector.lines),
        "Powertools log lines": run.stream.getvalue(),
        "stdout": out,
        "stderr": err,
        "answers": "\n".join(run.answers),
        "exceptions": "\n".join(run.raised),
        "ledger items": _ledger_text(service_env),
    }
    leaks = {name: found for name, text in sources.items() if (found := forbidden.leaks(text))}
    lines = len(run.collector.lines) + run.stream.getvalue().count("\n") + out.count("\n") + err.count("\n")
    record(
        "security: log hygiene",
        f"full run: {len(run.statuses)} scenarios, {len(signatures)} signed requests, {lines} log lines",
        f"leaks: {json.dumps(leaks)[:300]}" if leaks else "no key, signature or secret in logs, answers or ledger",
        cases=len(run.statuses),
    )

    assert not leaks, leaks
    # The run did what it claims: it signed requests, logged outcomes, answered every class of status.
    assert len(signatures) >= len(FAULTS) * 2
    assert "budget update" in run.stream.getvalue()
    assert any("UNKNOWN" in line for line in run.collector.lines)
    assert {200, 400, 404, 409, 413, 422, 500, 502, 503, 504} <= set(run.statuses.values())
    assert run.statuses["misconfigured: private key in algorithm"] == 500
    assert run.statuses["schedule closed template"] == 200
    assert run.statuses["schedule invalid"] == -1
    assert run.raised
    assert items_before != sources["ledger items"]


def _ledger_text(env: ServiceEnv) -> str:
    items = env.dynamodb().scan(TableName=env.table_name).get("Items", [])
    return json.dumps(items, default=str)


def test_the_leak_detector_finds_what_it_looks_for(client_private_key: rsa.RSAPrivateKey) -> None:
    """A positive control: each kind of leak, reshaped as logs reshape it, is found; harmless text is not."""
    forbidden = Forbidden()
    forbidden.add_key("key", client_private_key)
    body = pem_body(private_key_pem(client_private_key))
    signature = bytes(range(256))
    signature_b64 = base64.b64encode(signature).decode()
    header = f"algorithm=RSA256,keyVersion=1,signature={quote(signature_b64, safe='')}"
    forbidden.add_signature_header(header)
    wrapped = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))

    assert forbidden.leaks(f'{{"message": "key {body[500 : 500 + WINDOW]} here"}}')
    assert forbidden.leaks(json.dumps({"k": wrapped}))
    assert forbidden.leaks("-----BEGIN RSA PRIVATE KEY-----")
    assert forbidden.leaks(f"headers: {header}")
    assert forbidden.leaks(f"sig={signature_b64[100 : 100 + WINDOW]}")
    assert forbidden.leaks(f"raw {signature.hex()[10:60]}")
    assert not forbidden.leaks(json.dumps({"message": "budget update", "outcome": "SUCCEEDED", "b": body[:39]}))
