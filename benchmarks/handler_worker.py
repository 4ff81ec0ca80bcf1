"""One Lambda execution environment for benchmarks/handler_bench.py: a fresh interpreter, one handler.

Started by the benchmark, never by hand. It imports nothing but ``sys``, ``os`` and ``time`` before
it imports the handler module, so the import it times is the handler's own::

    python benchmarks/handler_worker.py cold  MODULE_FILE RESULT_FILE EVENT_JSON
    python benchmarks/handler_worker.py serve MODULE_FILE [--count] [--tracemalloc]

``cold`` imports MODULE_FILE, invokes its ``lambda_handler`` once with EVENT_JSON and writes the
timings to RESULT_FILE. ``serve`` imports it once and then answers one JSON command per stdin line:

    {"op": "invoke", "event": {...}}
        -> {"seconds", "cpu_seconds", "status", "body", "calls", "sends", "log_bytes"}
    {"op": "batch", "event": {...}, "ids": [...]}
        -> {"seconds": [...], "cpu_seconds": [...], "statuses", "calls", "sends", "log_bytes"}
    {"op": "memory"}
        -> {"traced", "traced_peak", "rss_kib", "maxrss_kib"}
    {"op": "quit"}

Answers go to the original stdout. The handler's own stdout (logs, EMF metrics) goes to a scratch
file, as it would go to CloudWatch, and each answer says how many bytes it grew by (log_bytes).
``--count`` appends two handlers to botocore's BUILTIN_HANDLERS before the import, so every botocore
session the module creates counts its API calls (``before-call``) and HTTP requests
(``before-send``, retries included). Each invocation gets a fresh, sampled ``_X_AMZN_TRACE_ID``, as
the Lambda runtime sets it. ``cpu_seconds`` is the invoking thread's CPU time (the handler,
botocore and the X-Ray emitter all run on it).
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the handler's import must pay for typing itself
if TYPE_CHECKING:
    from typing import Any

_counts: dict[str, int] = {}
_sends = [0]


def _on_call(event_name: str = "", **_: object) -> None:
    # before-call.<service>.<Operation>
    key = event_name.split(".", 1)[1] if "." in event_name else event_name
    _counts[key] = _counts.get(key, 0) + 1


def _on_send(**_: object) -> None:
    _sends[0] += 1


class Context:
    """What the Lambda runtime passes: the fields Powertools reads and a real remaining-time clock."""

    function_name = "UpdateBudgetFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-east-1:000000000000:function:UpdateBudgetFunction"
    log_group_name = "/aws/lambda/UpdateBudgetFunction"
    log_stream_name = "bench"

    def __init__(self, number: int, timeout: float = 25.0) -> None:
        self.aws_request_id = f"00000000-0000-4000-8000-{number:012d}"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _trace_header(number: int) -> str:
    return f"Root=1-{int(time.time()):08x}-{os.getpid():012x}{number:012x};Parent={number:016x};Sampled=1"


def _import(path: str) -> Any:
    directory, name = os.path.split(os.path.abspath(path))
    sys.path.insert(0, directory)
    return __import__(name.removesuffix(".py"))


def _maxrss_kib() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def cold(module_path: str, result_path: str, event_text: str) -> None:
    os.environ["_X_AMZN_TRACE_ID"] = _trace_header(1)
    started = time.perf_counter()
    module = _import(module_path)
    imported = time.perf_counter()
    import json

    event = json.loads(event_text)
    context = Context(1)
    invoke_started = time.perf_counter()
    result = module.lambda_handler(event, context)
    finished = time.perf_counter()
    report = {
        "import_s": imported - started,
        "invoke_s": finished - invoke_started,
        "status": result.get("statusCode"),
        "body": result.get("body"),
        "maxrss_kib": _maxrss_kib(),
    }
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(report, handle)


class Server:
    """``serve`` mode: one imported handler, invoked on command."""

    def __init__(self, module_path: str, trace_memory: bool) -> None:
        self.trace_memory = trace_memory
        # Answers go to the original stdout; the handler's stdout goes to a scratch file, counted.
        self.answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
        scratch = os.environ.get("TMPDIR", "/tmp")  # noqa: S108 - a private file, removed on quit
        self.log_path = os.path.join(scratch, f"handler-worker-{os.getpid()}.log")
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(log, 1)
        os.close(log)
        self.log_bytes = 0
        started = time.perf_counter()
        module = _import(module_path)
        self.import_seconds = time.perf_counter() - started
        self.handler = module.lambda_handler
        self.number = 1
        self.cpu_seconds: list[float] = []

    def invoke(self, event: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        self.number += 1
        os.environ["_X_AMZN_TRACE_ID"] = _trace_header(self.number)
        context = Context(self.number)
        cpu = time.thread_time()
        begin = time.perf_counter()
        result: dict[str, Any] = self.handler(event, context)
        seconds = time.perf_counter() - begin
        self.cpu_seconds.append(time.thread_time() - cpu)
        return seconds, result

    def batch(self, event: dict[str, Any], request_ids: list[str]) -> dict[str, Any]:
        import json

        body = json.loads(event["body"])
        times: list[float] = []
        statuses: dict[str, int] = {}
        for request_id in request_ids:
            body["requestId"] = request_id
            seconds, result = self.invoke({**event, "body": json.dumps(body)})
            times.append(seconds)
            status = str(result.get("statusCode"))
            statuses[status] = statuses.get(status, 0) + 1
        return {"seconds": times, "cpu_seconds": self.cpu_seconds, "statuses": statuses}

    def memory(self) -> dict[str, Any]:
        import gc

        gc.collect()
        traced, peak = (0, 0)
        if self.trace_memory:
            import tracemalloc

            traced, peak = tracemalloc.get_traced_memory()
        with open("/proc/self/statm", encoding="ascii") as statm:
            rss_pages = int(statm.read().split()[1])
        return {
            "traced": traced,
            "traced_peak": peak,
            "rss_kib": rss_pages * os.sysconf("SC_PAGE_SIZE") // 1024,
            "maxrss_kib": _maxrss_kib(),
        }

    def answer(self, data: dict[str, Any]) -> None:
        import json

        self.answers.write(json.dumps(data) + "\n")
        self.answers.flush()

    def run(self) -> None:
        import json

        self.answer({"ready": True, "import_s": self.import_seconds, **self.memory()})
        for line in sys.stdin:
            command = json.loads(line)
            op = command["op"]
            if op == "quit":
                os.unlink(self.log_path)
                break
            if op == "memory":
                self.answer(self.memory())
                continue
            if op == "invoke":
                seconds, result = self.invoke(command["event"])
                data = {"seconds": seconds, "cpu_seconds": self.cpu_seconds[-1], "status": result.get("statusCode")}
                data["body"] = result.get("body")
            elif op == "batch":
                data = self.batch(command["event"], command["ids"])
            else:
                self.answer({"error": f"unknown op {op!r}"})
                continue
            self.cpu_seconds = []
            sys.stdout.flush()
            written = os.fstat(1).st_size
            data["log_bytes"], self.log_bytes = written - self.log_bytes, written
            self.answer({**data, "calls": dict(_counts), "sends": _sends[0]})
            _counts.clear()
            _sends[0] = 0


def serve(module_path: str, count: bool, trace_memory: bool) -> None:
    if trace_memory:
        import tracemalloc

        tracemalloc.start(1)
    if count:
        import botocore.handlers

        botocore.handlers.BUILTIN_HANDLERS.extend([("before-call", _on_call), ("before-send", _on_send)])
    Server(module_path, trace_memory).run()


def main(argv: list[str]) -> None:
    mode, module_path, *rest = argv
    if mode == "cold":
        cold(module_path, rest[0], rest[1])
    elif mode == "serve":
        serve(module_path, count="--count" in rest, trace_memory="--tracemalloc" in rest)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
