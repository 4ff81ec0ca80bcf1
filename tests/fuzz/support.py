"""What the fuzz tests expect, written from the contract (section 4), and how they drive the handler.

The oracle here is deliberately independent of ``ipass_budget.models``: it restates the contract's
field rules so that a change in the validator that breaks the contract shows up as a disagreement.

Example counts: ``IPASS_FUZZ_PROFILE=long`` multiplies every fuzz test's ``max_examples`` by
``LONG_FACTOR`` for a long local run; the default ``quick`` keeps tests/fuzz well under a minute.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ipass_local.api_gateway import LOCAL_CALLER_ARN, proxy_event
from ipass_local.lambda_context import LocalLambdaContext
from tests.reliability_log import record
from tests.service.support import ServiceEnv

# ------------------------------------------------------------------------------- contract, section 4
MAX_BODY_BYTES = 16 * 1024
TOKEN_LIMITS = {"requestId": 128, "templateCode": 32, "merchantAccountId": 64}
REQUIRED = ("requestId", "templateCode", "updateType", "number")
ALLOWED = frozenset((*REQUIRED, "merchantAccountId"))
UPDATE_TYPES = ("APPEND_BUDGET", "SUBTRACT_BUDGET")
NUMBER_RANGE = (1, 999_999)
POST_ROUTE = "/budget-updates"
GET_ROUTE = "/budget-updates/{requestId}"
# A template the sandbox does not know: a valid request is answered 404 PASS_TEMPLATE_HAS_NOT_EXIT
# and changes nothing, so fuzzing can send as many as it likes.
NO_SUCH_TEMPLATE = "FUZZ-NO-SUCH-TEMPLATE"

FUZZ_PROFILE = os.environ.get("IPASS_FUZZ_PROFILE", "quick")
LONG_FACTOR = 25
FUZZ_CATEGORY = "fuzz: handler input"


def fuzz_settings(max_examples: int) -> settings:
    """Settings for one fuzz property: ``max_examples`` in the quick profile, more in the long one."""
    factor = LONG_FACTOR if FUZZ_PROFILE == "long" else 1
    return settings(
        max_examples=max_examples * factor,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def is_token(value: object, max_length: int) -> bool:
    """1..max_length characters, each printable ASCII without space (0x21-0x7E)."""
    return isinstance(value, str) and 1 <= len(value) <= max_length and all("!" <= ch <= "~" for ch in value)


def is_number(value: object) -> bool:
    """A JSON integer (not a float, string or boolean) from 1 to 999999."""
    return type(value) is int and NUMBER_RANGE[0] <= value <= NUMBER_RANGE[1]


def has_unpaired_surrogate_key(value: object) -> bool:
    """Whether any object member name, at any depth, holds an unpaired surrogate (no UTF-8 form)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if any(any("\ud800" <= ch <= "\udfff" for ch in key) for key in item):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def problem_fields(value: object) -> set[str]:
    """The fields a 400 answer must name for this decoded body; empty when the request is valid."""
    if has_unpaired_surrogate_key(value):
        return {"body"}
    if not isinstance(value, dict):
        return {"body"}
    fields = {str(name) for name in value if name not in ALLOWED}
    fields |= {name for name in REQUIRED if name not in value}
    fields |= {name for name, limit in TOKEN_LIMITS.items() if name in value and not is_token(value[name], limit)}
    if "updateType" in value and not (isinstance(value["updateType"], str) and value["updateType"] in UPDATE_TYPES):
        fields.add("updateType")
    if "number" in value and not is_number(value["number"]):
        fields.add("number")
    return fields


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)


def decode_body(raw: bytes) -> tuple[bool, Any]:
    """(True, value) when ``raw`` is strict JSON in UTF-8, else (False, the field to blame or None).

    Strict: UTF-8 without a BOM (JSON text never starts with U+FEFF), no NaN/Infinity, no
    duplicate member names (the duplicated name is the field to blame), and no nesting too deep
    to decode (blamed on the body).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False, "body"

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, item in pairs:
            if any("\ud800" <= ch <= "\udfff" for ch in key):
                raise _DuplicateKeyError("body")  # blamed on the body: it has no UTF-8 form
            if key in result:
                raise _DuplicateKeyError(key)
            result[key] = item
        return result

    def no_constants(_name: str) -> Any:
        raise ValueError("NaN and Infinity are not JSON")

    try:
        return True, json.loads(text, object_pairs_hook=pairs_hook, parse_constant=no_constants)
    except _DuplicateKeyError as exc:
        return False, exc.key
    except (ValueError, RecursionError):
        return False, "body"


@dataclass(frozen=True)
class Expectation:
    """What the answer to one POST body must be: ``too_large``, ``invalid`` (naming ``fields``) or ``valid``."""

    kind: str
    fields: frozenset[str] = frozenset()


def expect_for_raw(raw: bytes) -> Expectation:
    if len(raw) > MAX_BODY_BYTES:
        return Expectation("too_large")
    ok, value = decode_body(raw)
    if not ok:
        return Expectation("invalid", frozenset({value}))
    fields = problem_fields(value)
    return Expectation("invalid", frozenset(fields)) if fields else Expectation("valid")


def expect_for_event_body(body: object, flag: object) -> Expectation:
    """The POST expectation for an event's ``body`` and ``isBase64Encoded`` as the handler reads them.

    API Gateway sends a boolean flag (or none); any other value is refused, naming the flag, rather
    than guessed at. A base64 body must be strict base64 (no whitespace, correct padding); a plain
    body is the UTF-8 form of the string.
    """
    if flag is not None and not isinstance(flag, bool):
        return Expectation("invalid", frozenset({"isBase64Encoded"}))
    if not isinstance(body, str):
        return expect_for_raw(b"")
    if flag is not True:
        return expect_for_raw(body.encode("utf-8", errors="surrogatepass"))
    try:
        raw = base64.b64decode(body, validate=True)
    except ValueError:
        return Expectation("invalid", frozenset({"body"}))
    return expect_for_raw(raw)


# ------------------------------------------------------------------------------------ strategies
# Text that includes unpaired surrogates, which st.text() leaves out by default.
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
ANY_CHARACTER = st.one_of(st.characters(), SURROGATES, st.characters(max_codepoint=0x7F))
TEXT = st.text(ANY_CHARACTER, max_size=40)
HUGE_INTEGERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=10**18, max_value=10**400),
    st.sampled_from([0, -1, 1, 999_999, 1_000_000, 2**31, 2**53 + 1, 2**63, 2**64]),
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    HUGE_INTEGERS,
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    st.sampled_from(["", " ", "APPEND_BUDGET", "SUBTRACT_BUDGET", "append_budget", "100", "1.0", "true", "null"]),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(TEXT, st.sampled_from(sorted(ALLOWED))), children, max_size=5),
    ),
    max_leaves=12,
)
# Objects whose keys are mostly the contract's own, so field-level validation gets exercised.
REQUEST_LIKE_OBJECTS = st.dictionaries(
    st.one_of(st.sampled_from(sorted(ALLOWED)), TEXT), JSON_VALUES, min_size=0, max_size=7
)
TOKENS_AT_THE_EDGES = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=130),
    st.sampled_from(
        [
            *[
                "",
                " ",
                "a b",
                "a\tb",
                "\x7f",
                "\x20x",
                "x\x00",
                "\u00e9",
                "\ud800",
                "\udfff",
                "\uff21\uff22",
                "a\u200bb",
            ],
            *["x" * 32, "x" * 33, "x" * 64, "x" * 65, "x" * 128, "x" * 129],
        ]
    ),
    TEXT,
)


def valid_request(request_id: str | None = None) -> dict[str, Any]:
    """A request the contract accepts, for a template the sandbox does not know."""
    return {
        "requestId": request_id or f"fuzz-{uuid.uuid4().hex}",
        "templateCode": NO_SUCH_TEMPLATE,
        "updateType": "APPEND_BUDGET",
        "number": 1,
    }


# ---------------------------------------------------------------------------------- calling it
@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any
    sent: int  # requests that reached the sandbox during this one call


def invoke(handler: ModuleType, env: ServiceEnv, event: dict[str, Any]) -> Answer:
    """Call the handler with ``event``; any exception escapes (the tests treat it as a failure)."""
    before = env.admin.stats()["requests"]
    result = handler.lambda_handler(event, LocalLambdaContext())
    sent = env.admin.stats()["requests"] - before
    body = json.loads(result["body"]) if isinstance(result.get("body"), str) else None
    return Answer(int(result["statusCode"]), dict(result.get("headers") or {}), body, sent)


def post_event(body: str | None, *, flag: object = False, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway REST proxy event for POST /budget-updates with this exact body and flag."""
    event = proxy_event("POST", POST_ROUTE, headers or {"Content-Type": "application/json"}, b"", LOCAL_CALLER_ARN)
    event["body"] = body
    event["isBase64Encoded"] = flag
    return event


def raw_post_event(raw: bytes, *, as_base64: bool) -> dict[str, Any]:
    """POST ``raw`` either base64-encoded (as API Gateway passes binary bodies) or as a string.

    A string body must be text: bytes that are not UTF-8 are carried with surrogate escapes, so
    the handler sees a string it cannot encode back to UTF-8, like a body API Gateway mangled.
    """
    if as_base64:
        return post_event(base64.b64encode(raw).decode("ascii"), flag=True)
    return post_event(raw.decode("utf-8", errors="surrogateescape"), flag=False)


def problems_with(answer: Answer, expected: Expectation) -> list[str]:
    """Every way ``answer`` breaks the contract for ``expected``; empty when it is right."""
    problems: list[str] = []
    if not isinstance(answer.body, dict):
        return [f"answer body is not a JSON object: {answer.body!r:.200}"]
    if answer.headers.get("Content-Type") != "application/json":
        problems.append(f"Content-Type {answer.headers.get('Content-Type')!r}")
    error = answer.body.get("error")
    if expected.kind == "valid":
        problems += _valid_problems(answer)
        return problems
    if answer.sent:
        problems.append(f"{answer.sent} request(s) reached AlipayHK for an invalid input")
    if expected.kind == "too_large":
        if (answer.status, (error or {}).get("code")) != (413, "PAYLOAD_TOO_LARGE"):
            problems.append(f"expected 413 PAYLOAD_TOO_LARGE, got {answer.status} {error!r:.300}")
        return problems
    problems += error_problems(answer, 400, "INVALID_REQUEST")
    if not problems:
        named = {detail["field"] for detail in answer.body["error"]["details"]}
        if named != set(expected.fields):
            problems.append(f"details name {sorted(named)!r}, expected {sorted(expected.fields)!r}")
    for key in ("outcome", "resultInfo", "tracerId", "replayed"):
        if key in answer.body:
            problems.append(f"an input refusal carries {key!r}")
    return problems


def error_problems(answer: Answer, status: int, code: str) -> list[str]:
    """The shape of an error answer: status, code, a message and details that name fields."""
    if not isinstance(answer.body, dict):
        return [f"answer body is not a JSON object: {answer.body!r:.200}"]
    error = answer.body.get("error")
    if answer.status != status or not isinstance(error, dict) or error.get("code") != code:
        return [f"expected {status} {code}, got {answer.status} {json.dumps(answer.body)[:300]}"]
    problems = []
    if not isinstance(error.get("message"), str) or not error["message"]:
        problems.append("error.message is empty")
    details = error.get("details")
    if not isinstance(details, list):
        return [*problems, "error.details is not a list"]
    if code == "INVALID_REQUEST" and not details:
        problems.append("an INVALID_REQUEST names no field")
    for detail in details:
        # A field is named as sent, so an unknown member called "" is named "".
        if not (isinstance(detail, dict) and isinstance(detail.get("field"), str) and detail.get("message")):
            problems.append(f"detail without field or message: {detail!r:.200}")
    return problems


def _valid_problems(answer: Answer) -> list[str]:
    """A valid request for NO_SUCH_TEMPLATE: sent once and FAILED 404, or a replay/reuse without sending."""
    body = answer.body
    code = (body.get("error") or {}).get("code")
    if answer.status == 404 and code == "UPSTREAM_FAILED" and body.get("outcome") == "FAILED":
        expected_sent = 0 if body.get("replayed") else 1
        if answer.sent != expected_sent:
            return [f"{answer.sent} request(s) reached AlipayHK, expected {expected_sent}"]
        return []
    if answer.status == 422 and code == "REQUEST_ID_REUSED":
        return [] if answer.sent == 0 else [f"{answer.sent} request(s) sent for a reused requestId"]
    return [f"a valid request was answered {answer.status} {json.dumps(body)[:300]}"]


# ------------------------------------------------------------------------------------- evidence
@dataclass
class Tally:
    """What one fuzz property tried: examples run, rule breaks, and invalid inputs that were sent."""

    cases: int = 0
    valid: int = 0
    broken: int = 0
    sent_invalid: int = 0
    first_problem: str = ""
    statuses: dict[int, int] = field(default_factory=dict)

    def check(self, answer: Answer, expected: Expectation) -> list[str]:
        self.cases += 1
        self.statuses[answer.status] = self.statuses.get(answer.status, 0) + 1
        if expected.kind == "valid":
            self.valid += 1
        elif answer.sent:
            self.sent_invalid += 1
        problems = problems_with(answer, expected)
        if problems:
            self.broken += 1
            self.first_problem = self.first_problem or problems[0]
        return problems


@contextmanager
def tallied(case: str, rule: str) -> Iterator[Tally]:
    """Run a fuzz property and record its figures (even when it fails) before the failure is reported."""
    tally = Tally()
    try:
        yield tally
    finally:
        statuses = ", ".join(f"{status}x{count}" for status, count in sorted(tally.statuses.items()))
        if tally.broken:
            outcome = f"{tally.broken} of {tally.cases} broke the rule ({rule}); first: {tally.first_problem}"
        else:
            outcome = f"{rule}; {tally.valid} valid among them; statuses {statuses}"
        record(
            FUZZ_CATEGORY,
            case,
            outcome[:400],
            cases=tally.cases,
            sent_when_it_should_not=tally.sent_invalid,
        )


def assert_right(tally: Tally, answer: Answer, expected: Expectation, note: Callable[[], str] = lambda: "") -> None:
    problems = tally.check(answer, expected)
    assert not problems, f"{problems} for {note()}"
