"""Handler benchmark: is functions/update_budget/app.py as fast as a hand-written minimal handler?

Side by side in one run, against one loopback moto server (DynamoDB, Secrets Manager) and one
AlipayHK sandbox: the real handler next to the FLOOR, benchmarks/floor_handler.py, which does the
same job with nothing but boto3, requests and cryptography and makes the same AWS calls the ledger
rules require. Every handler runs in its own fresh interpreter (benchmarks/handler_worker.py), as
in a Lambda execution environment, configured as deployed: Tracing Active (``LAMBDA_TASK_ROOT``
set, a sampled ``_X_AMZN_TRACE_ID`` per invocation, X-Ray documents sent over UDP to a sink that
counts them), Powertools Logger and Metrics writing to stdout (a scratch file here). A third
column, the handler with ``POWERTOOLS_TRACE_DISABLED=true``, shows what tracing costs.

  cold start   import of the module + its first invocation (a new requestId) in a fresh
               interpreter; the process's wall time and peak RSS; the same from a copy of the
               layer without .pyc files, as layers/Makefile builds it (every import compiled)
  warm         one invocation, new requestId / replay of a finished one: wall time (median, p90),
               the invoking thread's CPU time, bytes written to stdout
  memory       tracemalloc and RSS after import, after a warm-up and twice over 1,000 more
               invocations (flat: the second half adds next to nothing)
  AWS calls    counted with botocore event hooks (before-call: API calls; before-send: HTTP
               requests, SDK retries included), cold and warm, new request and replay
  connections  TCP connections the sandbox accepted during the first 100 sequential invocations
               of an execution environment (its /__sandbox/stats counters)
  import time  ``python -X importtime``, self time summed per top-level package
  item size    a real ledger item, sized by DynamoDB's rules; cost per invocation at list prices

Samples are interleaved (alternating which column goes first) so that noise hits every column
alike. Targets: cold start <= 1.2x the floor, warm <= 1.15x the floor, a replay cheaper than a new
request, flat memory. Timings never fail the run: the exit status is non-zero only when something
fails (a wrong answer, a worker that dies, a server that does not start).

    .venv/bin/python benchmarks/handler_bench.py           # make bench-handler: ~2.5 min, writes docs/performance.md
    .venv/bin/python benchmarks/handler_bench.py --quick   # make bench-handler-quick: ~30 s, writes nothing
    .venv/bin/python benchmarks/handler_bench.py --phases warm --variant "no X-Ray=/tmp/v/app.py"
                                                            # try an alternative module as an extra column
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "benchmarks" / "handler_worker.py"
HANDLER_FILE = REPO / "functions" / "update_budget" / "app.py"
FLOOR_FILE = REPO / "benchmarks" / "floor_handler.py"
DOCS = REPO / "docs" / "performance.md"
BEGIN, END = "<!-- handler-bench:begin -->", "<!-- handler-bench:end -->"

COLD_TARGET = 1.20
WARM_TARGET = 1.15
# Flat memory: what the last half of the measured invocations may add to the traced heap, per invocation.
# Caches (linecache, botocore's) fill during the first few hundred invocations and then stop.
MEMORY_GROWTH_LIMIT_BYTES = 100
REGION = "ap-east-1"
TEMPLATE = "DEMO-VALID"


@dataclass(frozen=True)
class Sizes:
    cold: int  # cold starts per column
    warm: int  # warm samples per column, for new requests and for replays each
    warmup: int
    connections: int  # sequential invocations for the TCP connection count
    memory: int  # invocations measured for flat memory, after memory_warmup
    memory_warmup: int
    importtime: int  # -X importtime runs per column
    cold_no_pyc: int  # cold starts per column from a layer without .pyc files


FULL = Sizes(cold=15, warm=400, warmup=50, connections=100, memory=1000, memory_warmup=200, importtime=5, cold_no_pyc=5)
QUICK = Sizes(cold=2, warm=20, warmup=5, connections=100, memory=100, memory_warmup=50, importtime=1, cold_no_pyc=1)


class BenchError(RuntimeError):
    """Something did not do its job; the figures would be meaningless."""


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    module: Path
    env: dict[str, str] = field(default_factory=dict)


FLOOR = Column("floor", "floor", FLOOR_FILE)
HANDLER = Column("handler", "handler", HANDLER_FILE)
NO_TRACE = Column("notrace", "handler, no tracing", HANDLER_FILE, {"POWERTOOLS_TRACE_DISABLED": "true"})
AWS_TRACED = Column("awstraced", "handler, AWS calls traced", HANDLER_FILE, {"TRACE_AWS_CALLS": "true"})
COLUMNS = (HANDLER, FLOOR, NO_TRACE, AWS_TRACED)


# --- the local stack --------------------------------------------------------------------------------


class XRaySink:
    """A UDP socket standing in for the X-Ray daemon: receives segment documents, counted per process.

    handler_worker.py puts its process id into every trace id it makes, so a document's trace id
    says which execution environment sent it.
    """

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.documents: Counter[int] = Counter()  # process id -> documents received
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="xray-sink", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self._socket.getsockname()
        return f"{host}:{port}"

    def _drain(self) -> None:
        while not self._stopping.is_set():
            try:
                datagram = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            _, _, document = datagram.partition(b"\n")
            with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
                self.documents[int(json.loads(document)["trace_id"].split("-")[2][:12], 16)] += 1

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2)
        self._socket.close()


@dataclass
class Stack:
    env: dict[str, str]
    sandbox: Any  # ipass_sandbox.server.SandboxServer
    xray: XRaySink
    dynamodb: Any
    table: str


@contextmanager
def local_stack() -> Iterator[Stack]:
    import boto3
    from cryptography.hazmat.primitives.asymmetric import rsa

    from ipass_local.moto_server import MotoServerProcess
    from ipass_local.template import create_ledger_table
    from ipass_sandbox.config import (
        DEMO_CLIENT_ID,
        DEMO_KEY_VERSION,
        DEMO_MERCHANT_ACCOUNT_ID,
        build_config,
        demo_templates,
        signing_secret,
    )
    from ipass_sandbox.server import SandboxServer

    client_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sandbox_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    config = build_config(sandbox_key, {DEMO_CLIENT_ID: {DEMO_KEY_VERSION: client_key.public_key()}}, demo_templates())
    suffix = uuid.uuid4().hex[:8]
    table, secret_id = f"bench-ledger-{suffix}", f"bench-signing-{suffix}"
    with MotoServerProcess() as moto, SandboxServer(config) as sandbox:
        xray = XRaySink()
        try:
            session = boto3.session.Session(
                aws_access_key_id="bench",
                aws_secret_access_key="bench",  # noqa: S106 - moto accepts any credentials
                region_name=REGION,
            )
            dynamodb = session.client("dynamodb", endpoint_url=moto.url)
            create_ledger_table(dynamodb, table)
            secret = signing_secret(DEMO_CLIENT_ID, DEMO_MERCHANT_ACCOUNT_ID, client_key, sandbox_key.public_key())
            secretsmanager = session.client("secretsmanager", endpoint_url=moto.url)
            secretsmanager.create_secret(Name=secret_id, SecretString=json.dumps(secret))
            env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
            env.update(
                {
                    "AWS_ENDPOINT_URL": moto.url,
                    "AWS_REGION": REGION,
                    "AWS_DEFAULT_REGION": REGION,
                    "AWS_ACCESS_KEY_ID": "bench",
                    "AWS_SECRET_ACCESS_KEY": "bench",
                    "LEDGER_TABLE_NAME": table,
                    "SIGNING_SECRET_ID": secret_id,
                    "IPASS_BASE_URL": sandbox.url,
                    # as template.yaml deploys it
                    "POWERTOOLS_SERVICE_NAME": "ipass-budget",
                    "POWERTOOLS_METRICS_NAMESPACE": "IpassBudget",
                    "POWERTOOLS_LOG_LEVEL": "INFO",
                    "POWERTOOLS_LOGGER_LOG_EVENT": "false",
                    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
                    # what the Lambda runtime sets; Tracing: Active
                    "LAMBDA_TASK_ROOT": str(HANDLER_FILE.parent),
                    "AWS_LAMBDA_FUNCTION_NAME": "UpdateBudgetFunction",
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
                    "AWS_XRAY_DAEMON_ADDRESS": xray.address,
                    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
                }
            )
            yield Stack(env, sandbox, xray, dynamodb, table)
        finally:
            xray.close()


def event_for(request_id: str) -> dict[str, Any]:
    from ipass_local.api_gateway import LOCAL_CALLER_ARN, proxy_event

    body = {"requestId": request_id, "templateCode": TEMPLATE, "updateType": "APPEND_BUDGET", "number": 1}
    return proxy_event(
        "POST", "/budget-updates", {"Content-Type": "application/json"}, json.dumps(body).encode(), LOCAL_CALLER_ARN
    )


def check_answer(column: Column, status: Any, body: Any, replayed: bool) -> None:
    data = json.loads(body) if isinstance(body, str) else {}
    if status != 200 or data.get("outcome") != "SUCCEEDED" or bool(data.get("replayed")) is not replayed:
        raise BenchError(f"{column.title}: unexpected answer {status} {str(body)[:300]}")


# --- workers ----------------------------------------------------------------------------------------


class Worker:
    """A long-lived execution environment (handler_worker.py serve) for one column."""

    def __init__(self, column: Column, stack: Stack, *, trace_memory: bool = False) -> None:
        self.column = column
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 - closed in close()
        args = [sys.executable, str(WORKER), "serve", str(column.module), "--count"]
        if trace_memory:
            args.append("--tracemalloc")
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**stack.env, **column.env},
        )
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(timeout=10)
            self._stderr.seek(0)
            raise BenchError(f"{self.column.title} worker died:\n{self._stderr.read()[-3000:]}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise BenchError(f"{self.column.title} worker: {answer['error']}")
        return answer

    def call(self, **command: Any) -> dict[str, Any]:
        stdin: IO[str] | None = self._process.stdin
        assert stdin is not None
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()
        return self._read()

    @property
    def pid(self) -> int:
        return self._process.pid

    def invoke(self, request_id: str, *, replayed: bool = False) -> dict[str, Any]:
        answer = self.call(op="invoke", event=event_for(request_id))
        check_answer(self.column, answer["status"], answer["body"], replayed)
        return answer

    def batch(self, request_ids: list[str]) -> dict[str, Any]:
        answer = self.call(op="batch", event=event_for("placeholder"), ids=request_ids)
        if set(answer["statuses"]) != {"200"}:
            raise BenchError(f"{self.column.title}: batch answered {answer['statuses']}")
        return answer

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(BenchError, OSError, ValueError):
                self.call(op="quit")
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream:
                stream.close()
        self._stderr.close()


@contextmanager
def workers(columns: tuple[Column, ...], stack: Stack, **options: Any) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for column in columns:
            started.append(Worker(column, stack, **options))
        yield started
    finally:
        for worker in started:
            worker.close()


class Ids:
    """Unique requestIds per run and column."""

    def __init__(self) -> None:
        self._run = uuid.uuid4().hex[:8]
        self._next = 0
        self.finished: dict[str, list[str]] = {}

    def new(self, column: Column, what: str) -> str:
        self._next += 1
        return f"bench-{self._run}-{column.key}-{what}-{self._next}"


# --- measurements -----------------------------------------------------------------------------------


@dataclass
class Results:
    sizes: Sizes
    quick: bool
    cold: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cold_no_pyc: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warm_new: dict[str, list[float]] = field(default_factory=dict)
    warm_replay: dict[str, list[float]] = field(default_factory=dict)
    warm_new_cpu: dict[str, list[float]] = field(default_factory=dict)
    warm_replay_cpu: dict[str, list[float]] = field(default_factory=dict)
    calls: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # column -> case -> op -> n
    connections: dict[str, int] = field(default_factory=dict)
    log_bytes: dict[str, dict[str, float]] = field(default_factory=dict)  # column -> new/replay -> bytes
    alipay_requests: dict[str, int] = field(default_factory=dict)
    memory: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    import_breakdown: dict[str, dict[str, float]] = field(default_factory=dict)  # column -> package -> seconds
    import_total: dict[str, float] = field(default_factory=dict)
    xray_documents: dict[str, dict[str, float]] = field(default_factory=dict)  # column -> new/replay -> n
    ledger_item_bytes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def measure_cold(
    stack: Stack,
    ids: Ids,
    rounds: int,
    columns: tuple[Column, ...],
    into: dict[str, list[dict[str, Any]]],
    layer: Path | None = None,
) -> None:
    """Fresh interpreters, rounds x columns, alternating which column goes first in each round.

    ``layer``: a directory standing in for /opt/python without .pyc files, first on the path, with
    bytecode writing off: every module imported from it is compiled from source, as in Lambda.
    """
    env_extra = {"PYTHONPATH": str(layer), "PYTHONDONTWRITEBYTECODE": "1"} if layer else {}
    for column in columns:
        into[column.key] = []
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(rounds):
            shift = round_number % len(columns)
            for column in columns[shift:] + columns[:shift]:
                module = layer / "function" / column.module.name if layer else column.module
                result_path = Path(scratch) / f"{column.key}-{round_number}.json"
                event = json.dumps(event_for(ids.new(column, "cold")))
                args = [sys.executable, str(WORKER), "cold", str(module), str(result_path), event]
                begin = time.perf_counter()
                done = subprocess.run(  # noqa: PLW1510 - the status is checked below, with stderr
                    args,
                    env={**stack.env, **column.env, **env_extra},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                wall = time.perf_counter() - begin
                if done.returncode != 0 or not result_path.exists():
                    raise BenchError(f"{column.title} cold start failed:\n{done.stderr[-3000:]}")
                sample = json.loads(result_path.read_text(encoding="utf-8"))
                check_answer(column, sample["status"], sample["body"], replayed=False)
                sample["wall_s"] = wall
                sample["total_s"] = sample["import_s"] + sample["invoke_s"]
                into[column.key].append(sample)


def layer_without_pyc(directory: Path, columns: tuple[Column, ...]) -> Path:
    """What `sam build` ships (layers/Makefile: pip --no-compile): the layer's packages as sources only."""
    import importlib.metadata
    import shutil

    requirements = (REPO / "layers" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    names = [line.split("==")[0].split("[")[0].strip() for line in requirements if "==" in line]
    layer = directory / "python"
    for name in names:
        distribution = importlib.metadata.distribution(name)
        for file in distribution.files or ():
            parts = file.parts
            if parts[0].endswith((".dist-info", ".data")) or ".." in parts or "__pycache__" in parts:
                continue
            if file.suffix == ".pyc":
                continue
            target = layer / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(str(distribution.locate_file(file))), target)
    shutil.copytree(
        REPO / "layers" / "ipass_budget", layer / "ipass_budget", ignore=shutil.ignore_patterns("__pycache__")
    )
    (layer / "function").mkdir()
    for column in columns:  # the function code, like /var/task, has no .pyc either
        shutil.copyfile(column.module, layer / "function" / column.module.name)
    return layer


def per_request(counts: dict[str, int], sends: int, invocations: int) -> dict[str, float]:
    figures = {op: n / invocations for op, n in sorted(counts.items())}
    figures["HTTP requests"] = sends / invocations
    return figures


def measure_warm(stack: Stack, ids: Ids, sizes: Sizes, columns: tuple[Column, ...], results: Results) -> None:
    """Connections and call counts of a fresh environment, then interleaved warm timings."""
    with workers(columns, stack) as pool:
        done: dict[str, list[str]] = {}
        for worker in pool:  # one at a time: the sandbox's counters then belong to this worker alone
            key = worker.column.key
            before = stack.sandbox.state.stats()
            first_id = ids.new(worker.column, "first")
            first = worker.invoke(first_id)
            rest = [ids.new(worker.column, "conn") for _ in range(sizes.connections - 1)]
            batch = worker.batch(rest)
            after = stack.sandbox.state.stats()
            results.connections[key] = after["connections"] - before["connections"]
            results.alipay_requests[key] = after["requests"] - before["requests"]
            replay = worker.invoke(first_id, replayed=True)
            results.calls[key] = {
                "new, cold": per_request(first["calls"], first["sends"], 1),
                "new, warm": per_request(batch["calls"], batch["sends"], len(rest)),
                "replay, warm": per_request(replay["calls"], replay["sends"], 1),
            }
            done[key] = rest
        for i in range(sizes.warmup):
            for worker in pool:
                worker.invoke(ids.new(worker.column, "warmup"))
                worker.invoke(done[worker.column.key][i], replayed=True)
        new_ids: dict[str, list[str]] = {w.column.key: [] for w in pool}
        for kind in ("new", "replay"):
            time.sleep(0.2)  # the sink has received the warm-up's documents
            xray_before = {w.column.key: stack.xray.documents[w.pid] for w in pool}
            samples: dict[str, list[float]] = {w.column.key: [] for w in pool}
            cpu: dict[str, list[float]] = {w.column.key: [] for w in pool}
            calls: dict[str, dict[str, int]] = {w.column.key: {} for w in pool}
            logged: dict[str, int] = {w.column.key: 0 for w in pool}
            for i in range(sizes.warm):
                shift = i % len(pool)
                for worker in pool[shift:] + pool[:shift]:
                    key = worker.column.key
                    if kind == "new":
                        request_id = ids.new(worker.column, "warm")
                        new_ids[key].append(request_id)
                        answer = worker.invoke(request_id)
                    else:
                        answer = worker.invoke(new_ids[key][i], replayed=True)
                    samples[key].append(answer["seconds"])
                    cpu[key].append(answer["cpu_seconds"])
                    logged[key] += answer["log_bytes"]
                    for op, n in answer["calls"].items():
                        calls[key][op] = calls[key].get(op, 0) + n
            (results.warm_new if kind == "new" else results.warm_replay).update(samples)
            (results.warm_new_cpu if kind == "new" else results.warm_replay_cpu).update(cpu)
            for key, total in logged.items():
                results.log_bytes.setdefault(key, {})[kind] = total / sizes.warm
            for key, counted in calls.items():  # every timed sample made exactly the calls counted above
                expected = results.calls[key][f"{kind}, warm"]
                got = {op: n / sizes.warm for op, n in counted.items()}
                if any(abs(got.get(op, 0.0) - n) > 1e-9 for op, n in expected.items() if op != "HTTP requests"):
                    raise BenchError(f"{key}: timed {kind} requests made {got}, not {expected}")
            time.sleep(0.2)  # let the sink drain
            for worker in pool:
                sent = stack.xray.documents[worker.pid] - xray_before[worker.column.key]
                results.xray_documents.setdefault(worker.column.key, {})[kind] = sent / sizes.warm
        ids.finished.update(done)


def measure_memory(stack: Stack, ids: Ids, sizes: Sizes, columns: tuple[Column, ...], results: Results) -> None:
    """tracemalloc and RSS per column, in a fresh environment whose first invocation is a replay.

    Readings after import, after a warm-up, and twice more over ``sizes.memory`` invocations (each
    a new request and its replay): flat memory means the second half adds next to nothing.
    """
    for column in columns:
        replay_id = ids.finished[column.key][-1]  # finished by another environment (measure_warm)
        with workers((column,), stack, trace_memory=True) as (worker,):
            readings = {"after import": _memory(worker.ready)}
            first = worker.invoke(replay_id, replayed=True)
            results.calls[column.key]["replay, cold"] = per_request(first["calls"], first["sends"], 1)
            done = 1 + sizes.memory_warmup
            worker.batch([ids.new(column, "mem-warm") for _ in range(sizes.memory_warmup)])
            readings[f"after {done} invocations"] = _memory(worker.call(op="memory"))
            for _ in range(2):
                request_ids: list[str] = []
                for _ in range(sizes.memory // 4):
                    request_id = ids.new(column, "mem")
                    request_ids += [request_id, request_id]  # a new request, then its replay
                worker.batch(request_ids)
                done += len(request_ids)
                readings[f"after {done} invocations"] = _memory(worker.call(op="memory"))
            results.memory[column.key] = readings


def _memory(answer: dict[str, Any]) -> dict[str, int]:
    return {k: int(answer[k]) for k in ("traced", "traced_peak", "rss_kib", "maxrss_kib")}


def measure_imports(stack: Stack, sizes: Sizes, columns: tuple[Column, ...], results: Results) -> None:
    """``python -X importtime``: self time per top-level package, median over runs."""
    for column in columns:
        runs: list[dict[str, float]] = []
        totals: list[float] = []
        directory, name = column.module.parent, column.module.stem
        code = f"import sys; sys.path.insert(0, {str(directory)!r}); import {name}"
        for _ in range(sizes.importtime):
            done = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", code],
                env={**stack.env, **column.env},
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise BenchError(f"{column.title}: import failed:\n{done.stderr[-3000:]}")
            per_package: dict[str, float] = {}
            for line in done.stderr.splitlines():
                if not line.startswith("import time:") or "self [us]" in line:
                    continue
                self_us, cumulative_us, module = line[len("import time:") :].split("|")
                package = _package(module.strip())
                per_package[package] = per_package.get(package, 0.0) + int(self_us) / 1e6
                if module.strip() == name:
                    totals.append(int(cumulative_us) / 1e6)
            runs.append(per_package)
        packages = {p for run in runs for p in run}
        results.import_breakdown[column.key] = {p: statistics.median(run.get(p, 0.0) for run in runs) for p in packages}
        results.import_total[column.key] = statistics.median(totals)


_GROUPS = {
    "s3transfer": "boto3",
    "jmespath": "botocore",
    "dateutil": "botocore",
    "six": "botocore",
    "charset_normalizer": "requests",
    "idna": "requests",
    "certifi": "requests",
    "cffi": "cryptography",
    "_cffi_backend": "cryptography",
    "wrapt": "aws_xray_sdk",
    "typing_extensions": "aws_lambda_powertools",
}


def _package(module: str) -> str:
    top = module.split(".", maxsplit=1)[0]
    if top in sys.stdlib_module_names or top in ("encodings", "_distutils_hack", "sitecustomize"):
        return "(stdlib)"
    if top.startswith("__editable__"):
        return "(stdlib)"
    return _GROUPS.get(top, top)


def measure_ledger_items(stack: Stack, ids: Ids, results: Results) -> None:
    """DynamoDB item size of a real ledger item: the claim (SENDING) and the final (SUCCEEDED) one."""
    key = {"requestId": {"S": ids.finished[HANDLER.key][0]}}
    final = stack.dynamodb.get_item(TableName=stack.table, Key=key, ConsistentRead=True).get("Item")
    if not final or final["state"]["S"] != "SUCCEEDED":
        raise BenchError(f"no finished ledger item to size: {final}")
    # The claim is the same item before the final UpdateItem: the SENDING attributes, lease included.
    claim = {k: v for k, v in final.items() if k not in ("resultInfo", "tracerId", "reason", "expiresAt")}
    claim["state"] = {"S": "SENDING"}
    claim["leaseToken"] = {"S": "0" * 32}
    claim["leaseExpiresAt"] = {"N": "1767225600.123"}
    results.ledger_item_bytes = {"claim": item_size(claim), "final": item_size(final)}


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size rules: attribute names + values; numbers ~1 byte per 2 digits + 1."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in data.items())
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in data)
    raise BenchError(f"no size rule for {kind}")


# --- report -----------------------------------------------------------------------------------------


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10, method="inclusive")[8] if len(samples) > 1 else samples[0]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds >= 0.1 else f"{seconds * 1e3:.2f} ms"


@dataclass(frozen=True)
class Verdict:
    name: str
    measured: str
    target: str
    met: bool
    info: bool = False  # shown for comparison, not a target of its own


def _median_of(samples: dict[str, list[dict[str, Any]]], name: str) -> dict[str, float]:
    return {k: statistics.median(s[name] for s in v) for k, v in samples.items()}


def memory_growth(readings: dict[str, dict[str, int]]) -> tuple[int, int]:
    """Traced bytes added over the last half of the measured invocations, and that half's length."""
    *_, (middle_label, middle), (last_label, last) = readings.items()
    return last["traced"] - middle["traced"], int(last_label.split()[1]) - int(middle_label.split()[1])


def verdicts(results: Results) -> list[Verdict]:
    out: list[Verdict] = []
    if "handler" in results.cold and "floor" in results.cold:
        cold = _median_of(results.cold, "total_s")
        ratio = cold["handler"] / cold["floor"]
        out.append(
            Verdict(
                "cold start (import + first invocation)",
                f"{ratio:.2f}x floor",
                f"<= {COLD_TARGET:.2f}x",
                ratio <= COLD_TARGET,
            )
        )
    if "handler" in results.warm_new and "floor" in results.warm_new:
        for kind, data in (("new requestId", results.warm_new), ("replay", results.warm_replay)):
            ratio = statistics.median(data["handler"]) / statistics.median(data["floor"])
            out.append(
                Verdict(
                    f"warm invocation, {kind}", f"{ratio:.2f}x floor", f"<= {WARM_TARGET:.2f}x", ratio <= WARM_TARGET
                )
            )
        new, replay = statistics.median(results.warm_new["handler"]), statistics.median(results.warm_replay["handler"])
        out.append(
            Verdict("replay cheaper than a new request", f"{ms(replay)} vs {ms(new)}", "replay < new", replay < new)
        )
    for column, what in ((NO_TRACE, "tracing off"), (AWS_TRACED, "DynamoDB calls traced too (TRACE_AWS_CALLS)")):
        if column.key in results.warm_replay and "floor" in results.warm_replay:
            ratio = statistics.median(results.warm_replay[column.key]) / statistics.median(results.warm_replay["floor"])
            limit = f"<= {WARM_TARGET:.2f}x"
            out.append(Verdict(f"warm replay, {what}", f"{ratio:.2f}x floor", limit, ratio <= WARM_TARGET, info=True))
    if "handler" in results.memory:
        growth, invocations = memory_growth(results.memory["handler"])
        per_call = growth / invocations
        out.append(
            Verdict(
                f"flat memory: traced heap over the last {invocations} of {results.sizes.memory} invocations",
                f"{growth / 1024:+.1f} KiB ({per_call:+.0f} B/invocation)",
                f"<= {MEMORY_GROWTH_LIMIT_BYTES} B/invocation",
                per_call <= MEMORY_GROWTH_LIMIT_BYTES,
            )
        )
    if "handler" in results.calls:
        calls = results.calls["handler"]

        def total(case: str, service: str) -> float:
            return sum(n for op, n in calls.get(case, {}).items() if op.startswith(service + "."))

        figures = (total("new, warm", "dynamodb"), total("replay, warm", "dynamodb"))
        secrets = total("new, warm", "secretsmanager") + total("replay, warm", "secretsmanager")
        out.append(
            Verdict(
                "AWS calls per request, warm",
                f"new {figures[0]:g} DynamoDB, replay {figures[1]:g}; Secrets Manager {secrets:g}",
                "2 / 1; 0",
                figures[0] == 2 and figures[1] == 1 and secrets == 0,
            )
        )
    if "handler" in results.connections:
        connections = results.connections["handler"]
        out.append(
            Verdict(
                f"TCP connections to AlipayHK per {results.sizes.connections} invocations",
                str(connections),
                "1",
                connections == 1,
            )
        )
    return out


def table_rows(results: Results, columns: tuple[Column, ...]) -> list[list[str]]:
    rows: list[list[str]] = []

    def add(name: str, values: dict[str, str]) -> None:
        rows.append([name, *(values.get(c.key, "-") for c in columns)])

    def med_p90(data: dict[str, list[float]]) -> dict[str, str]:
        return {k: f"{ms(statistics.median(v))} (p90 {ms(p90(v))})" for k, v in data.items()}

    def ratio(data: dict[str, float]) -> dict[str, str]:
        return {k: f"{v / data['floor']:.2f}x" if "floor" in data else "" for k, v in data.items()}

    if results.cold:
        total = _median_of(results.cold, "total_s")
        add("cold: import", {k: ms(v) for k, v in _median_of(results.cold, "import_s").items()})
        add("cold: first invocation", {k: ms(v) for k, v in _median_of(results.cold, "invoke_s").items()})
        add("cold: import + first invocation", {k: f"{ms(v)} ({ratio(total)[k]})" for k, v in total.items()})
        add("cold: process wall time", {k: ms(v) for k, v in _median_of(results.cold, "wall_s").items()})
        add("cold: peak RSS", {k: f"{v / 1024:.1f} MiB" for k, v in _median_of(results.cold, "maxrss_kib").items()})
    if results.cold_no_pyc:
        total = _median_of(results.cold_no_pyc, "total_s")
        add("cold, no .pyc: import", {k: ms(v) for k, v in _median_of(results.cold_no_pyc, "import_s").items()})
        add("cold, no .pyc: import + first invocation", {k: f"{ms(v)} ({ratio(total)[k]})" for k, v in total.items()})
    if results.warm_new:
        for kind, wall, cpu in (
            ("new requestId", results.warm_new, results.warm_new_cpu),
            ("replay", results.warm_replay, results.warm_replay_cpu),
        ):
            add(f"warm: {kind}", med_p90(wall))
            add(f"warm: {kind}, ratio to floor", ratio({k: statistics.median(v) for k, v in wall.items()}))
            cpu_median = {k: statistics.median(v) for k, v in cpu.items()}
            add(f"warm: {kind}, CPU time", {k: f"{ms(v)} ({ratio(cpu_median)[k]})" for k, v in cpu_median.items()})
    if results.memory:
        for label in next(iter(results.memory.values())):
            add(
                f"memory {label}: traced / RSS",
                {
                    k: f"{m[label]['traced'] / 2**20:.2f} / {m[label]['rss_kib'] / 1024:.1f} MiB"
                    for k, m in results.memory.items()
                },
            )
    if results.calls:
        for case in ("new, cold", "new, warm", "replay, cold", "replay, warm"):
            add(f"AWS calls: {case}", {k: _calls_text(c[case]) for k, c in results.calls.items() if case in c})
    if results.log_bytes:
        add(
            "stdout per invocation (logs + EMF): new / replay",
            {k: f"{b['new']:.0f} / {b['replay']:.0f} B" for k, b in results.log_bytes.items()},
        )
    if results.xray_documents:
        add(
            "X-Ray documents per invocation: new / replay",
            {k: f"{d['new']:.1f} / {d['replay']:.1f}" for k, d in results.xray_documents.items()},
        )
    if results.connections:
        add(
            f"TCP connections / {results.sizes.connections} invocations",
            {k: str(v) for k, v in results.connections.items()},
        )
    if results.import_total:
        add("import (-X importtime, cumulative)", {k: ms(v) for k, v in results.import_total.items()})
    return rows


def _calls_text(calls: dict[str, float]) -> str:
    parts = [f"{op.split('.', 1)[-1]} {n:g}" for op, n in calls.items() if op != "HTTP requests" and n]
    return ", ".join(parts) + f" ({calls.get('HTTP requests', 0):g} HTTP)" if parts else "none"


def render_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def import_rows(results: Results, columns: tuple[Column, ...]) -> list[list[str]]:
    breakdown = results.import_breakdown
    packages = sorted(
        {p for b in breakdown.values() for p in b}, key=lambda p: -max(b.get(p, 0.0) for b in breakdown.values())
    )
    rows = []
    for package in packages:
        values = [breakdown.get(c.key, {}).get(package, 0.0) for c in columns]
        if max(values) >= 0.0005:
            rows.append([package, *(ms(v) for v in values)])
    return rows


def verdict_rows(results: Results, no: str = "NO") -> list[list[str]]:
    return [[v.name, v.measured, v.target, "info" if v.info else "yes" if v.met else no] for v in verdicts(results)]


def print_report(results: Results, columns: tuple[Column, ...]) -> None:
    header = ["", *(c.title for c in columns)]
    print(render_table(header, table_rows(results, columns)))
    if results.import_breakdown:
        print("\nImport time by package (-X importtime, self time summed per top-level package, median):")
        print(render_table(["package", *(c.title for c in columns)], import_rows(results, columns)))
    print()
    print(render_table(["target", "measured", "limit", "met"], verdict_rows(results)))
    print()
    if results.ledger_item_bytes:
        sizes = results.ledger_item_bytes
        print(f"ledger item size: claim {sizes['claim']} B, final {sizes['final']} B")
    if results.quick:
        print("Quick mode: too few samples for stable ratios.")


# --- docs/performance.md --------------------------------------------------------------------------------

# List prices, US East (N. Virginia), on-demand, first pricing tier (docs/performance.md names them).
PRICE_LAMBDA_ARM_GB_S = 0.0000133334
PRICE_LAMBDA_REQUEST = 0.20 / 1e6
PRICE_API_REST_REQUEST = 3.50 / 1e6
PRICE_DDB_WRU = 0.625 / 1e6
PRICE_SECRETS_CALL = 0.05 / 1e4
PRICE_XRAY_TRACE = 5.00 / 1e6
PRICE_LOGS_GB = 0.50
MEMORY_GB = 512 / 1024
# Lambda's own START, END and REPORT lines (with the X-Ray trace id), per invocation.
PLATFORM_LOG_BYTES = 350
# Assumed in production: AlipayHK's round trip dominates an update; a replay is one DynamoDB write.
PRODUCTION_UPDATE_SECONDS = 0.300
PRODUCTION_REPLAY_SECONDS = 0.030
# Secrets Manager: one GetSecretValue per environment per SECRET_CACHE_SECONDS (300 s); assumed 100
# invocations per read (e.g. 1 request/s spread over 3 warm environments).
INVOCATIONS_PER_SECRET_READ = 100


def lambda_cost(seconds: float) -> float:
    """One invocation: duration billed per 1 ms at 512 MB, plus the request charge."""
    return math.ceil(seconds * 1000) / 1000 * MEMORY_GB * PRICE_LAMBDA_ARM_GB_S + PRICE_LAMBDA_REQUEST


def cost_rows(results: Results) -> list[list[str]]:
    """Cost per million updates and per million replays, component by component, and their sum."""
    measured = statistics.median(results.warm_new["handler"]), statistics.median(results.warm_replay["handler"])
    claim, final = (math.ceil(results.ledger_item_bytes[k] / 1024) for k in ("claim", "final"))
    logs = [(results.log_bytes["handler"][k] + PLATFORM_LOG_BYTES) / 1e9 * PRICE_LOGS_GB for k in ("new", "replay")]
    components = [
        (
            "Lambda arm64 512 MB, at the measured warm duration",
            (lambda_cost(measured[0]), lambda_cost(measured[1])),
            f"{ms(measured[0])} / {ms(measured[1])}, billed per ms; $0.20 per million requests",
        ),
        (
            "Lambda arm64 512 MB, at an assumed production duration",
            (lambda_cost(PRODUCTION_UPDATE_SECONDS), lambda_cost(PRODUCTION_REPLAY_SECONDS)),
            f"{PRODUCTION_UPDATE_SECONDS * 1000:.0f} ms / {PRODUCTION_REPLAY_SECONDS * 1000:.0f} ms (AlipayHK and "
            "DynamoDB round trips dominate)",
        ),
        ("API Gateway REST", (PRICE_API_REST_REQUEST,) * 2, "$3.50 per million requests"),
        (
            "DynamoDB on-demand",
            ((claim + final) * PRICE_DDB_WRU, max(claim, final) * PRICE_DDB_WRU),
            f"{claim} + {final} WRU / {max(claim, final)} WRU (a refused conditional write is charged); 0 RRU",
        ),
        (
            "Secrets Manager, amortised by the cache",
            (PRICE_SECRETS_CALL / INVOCATIONS_PER_SECRET_READ,) * 2,
            f"$0.05 per 10,000 calls, 1 call per {INVOCATIONS_PER_SECRET_READ} invocations",
        ),
        (
            "CloudWatch Logs ingestion",
            (logs[0], logs[1]),
            f"{results.log_bytes['handler']['new']:.0f} / {results.log_bytes['handler']['replay']:.0f} B measured "
            f"+ {PLATFORM_LOG_BYTES} B of Lambda's own lines, $0.50 per GB",
        ),
        ("X-Ray, if every invocation is sampled", (PRICE_XRAY_TRACE,) * 2, "$5.00 per million traces recorded"),
    ]
    rows = [[name, _per_million(new), _per_million(replay), basis] for name, (new, replay), basis in components]
    production = [c for c in components if "measured warm" not in c[0]]
    totals = [sum(c[1][i] for c in production) for i in (0, 1)]
    rows.append(["**total** (production duration)", *(f"**{_per_million(t)}**" for t in totals), ""])
    return rows


def _per_million(cost: float) -> str:
    return f"${cost * 1e6:,.2f}"


def generated_section(results: Results, columns: tuple[Column, ...]) -> str:
    header = ["", *(c.title for c in columns)]
    sizes = results.sizes
    item = results.ledger_item_bytes
    lines = [
        BEGIN,
        "",
        f"Written by `make bench-handler` on {time.strftime('%Y-%m-%d')} (Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, {results.seconds:.0f} s); the next run rewrites this section.",
        "",
        "### Targets",
        "",
        markdown_table(["target", "measured", "limit", "met"], verdict_rows(results, no="**no**")),
        "",
        "### All figures",
        "",
        f"Medians of {sizes.cold} cold starts ({sizes.cold_no_pyc} without .pyc) and {sizes.warm} warm "
        "samples per column, p90 in brackets. CPU time is the invoking thread's.",
        "",
        markdown_table(header, table_rows(results, columns)),
        "",
        "### Import time by package",
        "",
        f"`python -X importtime`, self time summed per top-level package, median of {sizes.importtime} runs "
        "(`-X importtime` adds its own overhead).",
        "",
        markdown_table(["package", *(c.title for c in columns)], import_rows(results, columns)),
        "",
        "### Cost per invocation (list prices, US East (N. Virginia))",
        "",
        f"Ledger item size by DynamoDB's rules, from a real item: claim (SENDING) {item['claim']} bytes, "
        f"final (SUCCEEDED) {item['final']} bytes.",
        "",
        markdown_table(["component", "per million updates", "per million replays", "basis"], cost_rows(results)),
        "",
        END,
    ]
    return "\n".join(lines)


def write_docs(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = (text.rstrip() + "\n\n" if text else "# Performance\n\n") + section + "\n"
    path.write_text(text, encoding="utf-8")


# --- main -------------------------------------------------------------------------------------------


class BenchFailure(Exception):
    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(step)
        self.step, self.cause = step, f"{type(cause).__name__}: {cause}"


def measure(phases: set[str], sizes: Sizes, columns: tuple[Column, ...], results: Results) -> None:
    step = "starting moto server and the sandbox"
    try:
        with local_stack() as stack:
            ids = Ids()
            if "imports" in phases:
                step = "import time"
                measure_imports(stack, sizes, columns, results)
            if "cold" in phases:
                step = "cold starts"
                measure_cold(stack, ids, sizes.cold, columns, results.cold)
            if "nopyc" in phases:
                step = "cold starts without .pyc"
                judged = tuple(c for c in columns if c.key in (HANDLER.key, FLOOR.key))
                with tempfile.TemporaryDirectory() as scratch:
                    layer = layer_without_pyc(Path(scratch), judged)
                    measure_cold(stack, ids, sizes.cold_no_pyc, judged, results.cold_no_pyc, layer)
            if "warm" in phases:
                step = "warm invocations"
                measure_warm(stack, ids, sizes, columns, results)
                step = "ledger item size"
                measure_ledger_items(stack, ids, results)
            if "memory" in phases:
                step = "memory"
                measure_memory(stack, ids, sizes, columns, results)
    except Exception as exc:
        raise BenchFailure(step, exc) from exc


PHASES = ("imports", "cold", "nopyc", "warm", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few samples, writes no docs (CI smoke run)")
    parser.add_argument(
        "--docs", type=Path, help=f"write the figures into this file (full run: {DOCS.relative_to(REPO)})"
    )
    parser.add_argument("--no-docs", action="store_true", help="write no docs")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="TITLE=MODULE_FILE",
        help="an extra, unjudged column: another handler module to compare (for trying alternatives)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    phases = set(args.phases.split(","))
    if not phases <= set(PHASES) or ("memory" in phases and "warm" not in phases):
        parser.error(f"--phases: choose from {','.join(PHASES)} (memory needs warm)")
    columns: tuple[Column, ...] = COLUMNS
    for number, variant in enumerate(args.variant, 1):
        title, _, module = variant.partition("=")
        columns = (*columns, Column(f"variant{number}", title, Path(module).resolve()))
    everything = phases == set(PHASES) and not args.variant
    docs = None if args.no_docs or not everything else (args.docs or (None if args.quick else DOCS))
    started = time.perf_counter()
    results = Results(sizes, args.quick)
    try:
        measure(phases, sizes, columns, results)
    except BenchFailure as failure:  # report what broke, then fail: the figures would be meaningless
        print(f"benchmark failed during {failure.step}: {failure.cause}", file=sys.stderr)
        return 1
    results.seconds = time.perf_counter() - started
    print(
        f"ipass-budget handler benchmark ({'quick' if args.quick else 'full'} run, Python {sys.version.split()[0]})\n"
    )
    print_report(results, columns)
    if docs is not None:
        write_docs(docs, generated_section(results, columns))
        print(f"\nwrote {docs}")
    print(f"\ntotal {results.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
