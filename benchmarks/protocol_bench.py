"""Protocol benchmark: what does ipass_budget cost over hand-written cryptography + requests code?

Prints one table: median and p90 of

  (a) sign          ipass_budget.signing.sign_request   vs  build content, RSA-sign, base64, percent-encode
  (b) verify        ipass_budget.response.evaluate_response  vs  split header, unquote, base64, verify, json
  (c) key parse     ipass_budget.keys.load_private_key, uncached and cached  vs  load_pem_private_key
  (d) round trip    AlipayClient.send against a local sandbox  vs  the same by hand with a requests.Session

next to a plain baseline and the ratio client/baseline (target: within 1.10). The two sides are
interleaved sample by sample (alternating which goes first) so that drift and noise hit both alike.

    .venv/bin/python benchmarks/protocol_bench.py           # full run (15-30 s)
    .venv/bin/python benchmarks/protocol_bench.py --quick   # CI smoke run (a few seconds)

The exit status is non-zero only when something fails (an answer does not verify, the sandbox does not
start); timings never fail the run. The keys are generated per run and never leave the process.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ipass_budget import UPDATE_BUDGET_PATH
from ipass_budget.client import AlipayClient
from ipass_budget.credentials import Credentials
from ipass_budget.keys import load_private_key
from ipass_budget.models import BudgetUpdate, UpdateType
from ipass_budget.outcome import Disposition
from ipass_budget.response import evaluate_response
from ipass_budget.signing import sign, sign_request, signing_content, timestamp

TARGET = 1.10
CLIENT_ID = "BENCHCLIENT01"
KEY_VERSION = "1"
MERCHANT = "2160000000000001"
TEMPLATE = "DEMO-VALID"  # a valid template of ipass_sandbox.config.demo_templates()
PKCS1 = padding.PKCS1v15()
SHA256 = hashes.SHA256()


@dataclass(frozen=True)
class Sizes:
    sign: int
    verify: int
    parse: int
    round_trip: int
    warmup: int


FULL = Sizes(sign=2000, verify=2000, parse=60, round_trip=1000, warmup=20)
QUICK = Sizes(sign=60, verify=60, parse=4, round_trip=40, warmup=3)


class BenchError(RuntimeError):
    """A measured operation did not do its job; the figures would be meaningless."""


@dataclass(frozen=True)
class Row:
    name: str
    client: list[float]  # seconds per sample
    baseline: list[float]


def interleave(n: int, warmup: int, client: Callable[[int], None], baseline: Callable[[int], None]) -> Row:
    """Run ``n`` samples of each side, alternating which side goes first; return per-sample seconds."""
    for i in range(warmup):
        client(-1 - i)
        baseline(-1 - i)
    gc.collect()
    ours: list[float] = []
    theirs: list[float] = []
    clock = time.perf_counter
    for i in range(n):
        order = ((client, ours), (baseline, theirs)) if i % 2 == 0 else ((baseline, theirs), (client, ours))
        for run, samples in order:
            start = clock()
            run(i)
            samples.append(clock() - start)
    return Row("", ours, theirs)


# --- the hand-written baseline: only cryptography, requests and the standard library ------------------


def baseline_headers(key: rsa.RSAPrivateKey, body: bytes, request_time: str | None = None) -> dict[str, str]:
    request_time = request_time or datetime.now(UTC).isoformat(timespec="seconds")
    content = f"POST {UPDATE_BUDGET_PATH}\n{CLIENT_ID}.{request_time}.".encode() + body
    signature = base64.b64encode(key.sign(content, PKCS1, SHA256)).decode("ascii")
    return {
        "Content-Type": "application/json; charset=UTF-8",
        "Client-Id": CLIENT_ID,
        "Request-Time": request_time,
        "Signature": f"algorithm=RSA256,keyVersion={KEY_VERSION},signature={quote(signature, safe='')}",
    }


def baseline_read_answer(public_key: rsa.RSAPublicKey, headers: Mapping[str, str], body: bytes) -> str:
    """Verify the answer's signature and return its resultStatus; raises if it does not verify."""
    encoded = headers["Signature"].split("signature=", 1)[1]
    content = f"POST {UPDATE_BUDGET_PATH}\n{CLIENT_ID}.{headers['Response-Time']}.".encode() + body
    public_key.verify(base64.b64decode(unquote(encoded)), content, PKCS1, SHA256)
    status: str = json.loads(body)["resultInfo"]["resultStatus"]
    return status


def baseline_body(request_id: str) -> bytes:
    data = {
        "requestId": request_id,
        "merchantAccountId": MERCHANT,
        "templateCode": TEMPLATE,
        "updateType": "APPEND_BUDGET",
        "number": 1,
    }
    return json.dumps(data, separators=(",", ":")).encode()


def client_body(request_id: str) -> bytes:
    return BudgetUpdate(request_id, MERCHANT, TEMPLATE, UpdateType.APPEND_BUDGET, 1).to_body()


# --- the four measurements ------------------------------------------------------------------------------


def bench_sign(sizes: Sizes, key: rsa.RSAPrivateKey) -> Row:
    body = client_body("bench-sign")

    def ours(_: int) -> None:
        sign_request(key, CLIENT_ID, KEY_VERSION, UPDATE_BUDGET_PATH, body)

    def theirs(_: int) -> None:
        baseline_headers(key, body)

    # Same key, time and body: both sides must produce the same headers (PKCS#1 v1.5 is deterministic).
    now = datetime.now(UTC)
    mine = sign_request(key, CLIENT_ID, KEY_VERSION, UPDATE_BUDGET_PATH, body, now=now)
    if mine != baseline_headers(key, body, now.isoformat(timespec="seconds")):
        raise BenchError("sign_request and the baseline disagree on the same input")
    return interleave(sizes.sign, sizes.warmup, ours, theirs)


def bench_verify(sizes: Sizes, gateway_key: rsa.RSAPrivateKey) -> Row:
    public_key = gateway_key.public_key()
    body = b'{"resultInfo":{"resultCode":"SUCCESS","resultStatus":"S","resultMsg":"Success"}}'
    response_time = timestamp()
    content = signing_content("POST", UPDATE_BUDGET_PATH, CLIENT_ID, response_time, body)
    headers = requests.structures.CaseInsensitiveDict(
        {
            "Content-Type": "application/json; charset=UTF-8",
            "Client-Id": CLIENT_ID,
            "Response-Time": response_time,
            "Signature": f"algorithm=RSA256,keyVersion=1,signature={quote(sign(gateway_key, content), safe='')}",
            "Tracer-Id": "bench",
        }
    )

    def ours(_: int) -> None:
        result = evaluate_response(
            http_status=200,
            headers=headers,
            body=body,
            path=UPDATE_BUDGET_PATH,
            client_id=CLIENT_ID,
            alipay_public_key=public_key,
        )
        if result.disposition is not Disposition.SUCCEEDED:
            raise BenchError(f"evaluate_response: {result.disposition} {result.reason} {result.detail}")

    def theirs(_: int) -> None:
        if baseline_read_answer(public_key, headers, body) != "S":
            raise BenchError("baseline did not read S")

    return interleave(sizes.verify, sizes.warmup, ours, theirs)


def bench_parse(sizes: Sizes, key: rsa.RSAPrivateKey) -> tuple[Row, Row]:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    uncached = load_private_key.__wrapped__

    def ours_uncached(_: int) -> None:
        uncached(pem, "privateKey")

    def ours_cached(_: int) -> None:
        load_private_key(pem, "privateKey")

    def theirs(_: int) -> None:
        serialization.load_pem_private_key(pem.encode("ascii"), password=None)

    warmup = min(sizes.warmup, 2)
    first = interleave(sizes.parse, warmup, ours_uncached, theirs)
    second = interleave(sizes.parse, warmup, ours_cached, theirs)
    return first, second


@contextmanager
def running_sandbox(client_key: rsa.RSAPrivateKey, gateway_key: rsa.RSAPrivateKey) -> Iterator[str]:
    from ipass_sandbox.config import build_config, demo_templates
    from ipass_sandbox.server import SandboxServer

    config = build_config(gateway_key, {CLIENT_ID: {KEY_VERSION: client_key.public_key()}}, demo_templates(MERCHANT))
    with SandboxServer(config, "127.0.0.1", 0) as server:
        yield server.url


def bench_round_trip(sizes: Sizes, client_key: rsa.RSAPrivateKey, gateway_key: rsa.RSAPrivateKey) -> Row:
    credentials = Credentials(
        client_id=CLIENT_ID,
        merchant_account_id=MERCHANT,
        key_version=KEY_VERSION,
        private_key=client_key,
        alipay_public_key=gateway_key.public_key(),
    )
    public_key = gateway_key.public_key()
    with running_sandbox(client_key, gateway_key) as base_url:
        client = AlipayClient(base_url)
        session = requests.Session()
        url = base_url + UPDATE_BUDGET_PATH
        try:

            def ours(i: int) -> None:
                body = client_body(f"bench-client-{i}")
                result = client.send(credentials, body, deadline=time.monotonic() + 10.0)
                if result.disposition is not Disposition.SUCCEEDED:
                    final = result.final
                    raise BenchError(f"AlipayClient.send: {final.disposition} {final.reason} {final.detail}")

            def theirs(i: int) -> None:
                body = baseline_body(f"bench-baseline-{i}")
                response = session.post(
                    url,
                    data=body,
                    headers=baseline_headers(client_key, body),
                    timeout=(3.0, 10.0),
                    allow_redirects=False,
                )
                if response.status_code != 200:
                    raise BenchError(f"baseline: HTTP {response.status_code}")
                if baseline_read_answer(public_key, response.headers, response.content) != "S":
                    raise BenchError(f"baseline: {response.content[:200]!r}")

            return interleave(sizes.round_trip, sizes.warmup, ours, theirs)
        finally:
            client.close()
            session.close()


# --- report ---------------------------------------------------------------------------------------------


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10, method="inclusive")[8] if len(samples) > 1 else samples[0]


def fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:8.2f} ms"
    return f"{seconds * 1e6:8.1f} us"


def fmt_signed(seconds: float) -> str:
    return ("+" if seconds >= 0 else "-") + fmt(abs(seconds)).strip()


def print_table(rows: list[Row], sizes: Sizes, quick: bool) -> None:
    header = (
        f"{'operation':<34} {'n':>5}  {'client med':>11} {'client p90':>11}  "
        f"{'base med':>11} {'base p90':>11}  {'ratio':>6} {'client-base':>11}  {'target':<6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ours, theirs = statistics.median(row.client), statistics.median(row.baseline)
        ratio = ours / theirs
        verdict = "info" if row.name.startswith("key parse, cached") else ("ok" if ratio <= TARGET else "over")
        print(
            f"{row.name:<34} {len(row.client):>5}  {fmt(ours):>11} {fmt(p90(row.client)):>11}  "
            f"{fmt(theirs):>11} {fmt(p90(row.baseline)):>11}  "
            f"{ratio:6.3f} {fmt_signed(ours - theirs):>11}  {verdict:<6}"
        )
    print()
    print(f"ratio = client median / baseline median (target <= {TARGET:.2f}); client-base = the absolute cost.")
    if quick:
        print("Quick mode: too few samples for stable ratios.")
    print(
        "'key parse, cached' is what a warm Lambda pays per call (load_private_key is an lru_cache), next to\n"
        "the parse it avoids; an uncached parse costs many signatures, which is why keys are cached."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few iterations (CI smoke run)")
    parser.add_argument("--no-round-trip", action="store_true", help="skip the sandbox round trip")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL

    started = time.perf_counter()
    client_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    gateway_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rows: list[Row] = []
    try:
        rows.append(_named("sign (sign_request)", bench_sign(sizes, client_key)))
        rows.append(_named("verify (evaluate_response)", bench_verify(sizes, gateway_key)))
        uncached, cached = bench_parse(sizes, client_key)
        rows.append(_named("key parse, uncached", uncached))
        rows.append(_named("key parse, cached (as used)", cached))
        if not args.no_round_trip:
            rows.append(_named("round trip (AlipayClient.send)", bench_round_trip(sizes, client_key, gateway_key)))
    except Exception as exc:  # report what broke, then fail: the figures would be meaningless
        if rows:
            print_table(rows, sizes, args.quick)
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"ipass_budget protocol benchmark ({'quick' if args.quick else 'full'} run, Python {sys.version.split()[0]})")
    print()
    print_table(rows, sizes, args.quick)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0


def _named(name: str, row: Row) -> Row:
    return Row(name, row.client, row.baseline)


if __name__ == "__main__":
    sys.exit(main())
