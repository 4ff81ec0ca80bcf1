"""Property-based fuzzing of the Lambda handler with API Gateway proxy events (contract section 4).

Every property: the handler never raises; bad input is answered 400 INVALID_REQUEST with details
naming exactly the bad fields (413 PAYLOAD_TOO_LARGE over 16 KiB), as JSON, and nothing reaches
AlipayHK (the sandbox's request count does not move). An input that happens to be valid gets the
documented answer for a valid request: sent once, 404 UPSTREAM_FAILED for the unknown template (or
a replay / REQUEST_ID_REUSED when hypothesis repeats a requestId), never a 5xx.

Each property runs inside its test, so the function-scoped deployment (table, secret, sandbox) is
shared by all of its examples on purpose: the sandbox count must stay at zero across all of them.
"""

from __future__ import annotations

import base64
import json
from types import ModuleType
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.support import (
    ALLOWED,
    GET_ROUTE,
    JSON_SCALARS,
    JSON_VALUES,
    MAX_BODY_BYTES,
    POST_ROUTE,
    REQUEST_LIKE_OBJECTS,
    REQUIRED,
    SURROGATES,
    TEXT,
    TOKENS_AT_THE_EDGES,
    Answer,
    Expectation,
    assert_right,
    error_problems,
    expect_for_event_body,
    fuzz_settings,
    invoke,
    is_token,
    post_event,
    raw_post_event,
    tallied,
    valid_request,
)
from tests.service.support import ServiceEnv

RULE = "400 naming each bad field (413 over 16 KiB), JSON, nothing sent; valid ones answered as documented"

NUMBER_LIKE = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**7), max_value=2 * 10**7),
    st.integers(min_value=10**6, max_value=10**400),
    st.booleans(),
    st.integers(min_value=-10, max_value=10**7).map(str),
    st.sampled_from([1.0, 100.0, 1e3, -0.0, 999_999.0, 5e-324, 0, 999_999, 1_000_000, 2**63, -(2**63)]),
)
NUMBER_LITERALS = st.one_of(
    st.sampled_from(
        [
            *["1.0", "1e2", "1E2", "1e+2", "100e-2", "-0", "0", "01", "+1", "0x10", "1_000", "NaN", "Infinity"],
            *["-Infinity", "1E400", "-1E400", '"1"', "true", "false", "null", "[1]", "{}", "1.", ".5", " 7 "],
            *["999999", "1000000", "\uff19", "1 2", "- 1", "9" * 4301],
        ]
    ),
    st.integers(min_value=-(10**7), max_value=2 * 10**7).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
INVALID_UTF8 = st.sampled_from(
    [
        *[b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80"],
        *[b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"\x80", b"\xc3", b"\xef\xbb\xbf"],
    ]
)
ENCODINGS = st.sampled_from(
    ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig", "cp500", "latin-1", "cp1252", "shift_jis", "gb18030"]
)
FLAGS: st.SearchStrategy[Any] = st.sampled_from(
    [True, False, None, "true", "false", "", 0, 1, [], {}, "yes", "MISSING"]
)


def _post(handler: ModuleType, env: ServiceEnv, event: dict[str, Any]) -> tuple[Answer, Expectation]:
    expected = expect_for_event_body(event.get("body"), event.get("isBase64Encoded"))
    return invoke(handler, env, event), expected


def test_arbitrary_json_values(handler: ModuleType, service_env: ServiceEnv) -> None:
    with tallied("arbitrary JSON values and request-like objects as the body", RULE) as tally:

        @fuzz_settings(150)
        @given(value=st.one_of(JSON_VALUES, REQUEST_LIKE_OBJECTS), ascii_only=st.booleans(), as_base64=st.booleans())
        @example(value={"\ud800": 1}, ascii_only=True, as_base64=False)
        @example(value={"requestId": "\udfff", "x\ud800y": [1]}, ascii_only=True, as_base64=True)
        @example(value=[[[[]]]], ascii_only=True, as_base64=False)
        def run(value: Any, ascii_only: bool, as_base64: bool) -> None:
            text = json.dumps(value, ensure_ascii=ascii_only)
            event = raw_post_event(text.encode("utf-8", errors="surrogatepass"), as_base64=as_base64)
            answer, expected = _post(handler, service_env, event)
            assert_right(tally, answer, expected, lambda: text[:300])

        run()


MUTATIONS = st.one_of(
    st.tuples(st.just("replace"), st.sampled_from(sorted(ALLOWED)), st.one_of(JSON_VALUES, TOKENS_AT_THE_EDGES)),
    st.tuples(st.just("replace"), st.just("number"), NUMBER_LIKE),
    st.tuples(st.just("replace"), st.just("updateType"), st.one_of(TEXT, st.sampled_from(["APPEND_BUDGET ", "a"]))),
    st.tuples(st.just("remove"), st.sampled_from([*REQUIRED, "merchantAccountId"]), st.none()),
    st.tuples(st.just("add"), st.one_of(TEXT, st.sampled_from(["RequestId", "request_id", "amount"])), JSON_VALUES),
)


def test_valid_request_with_mutated_fields(handler: ModuleType, service_env: ServiceEnv) -> None:
    with tallied("a valid request with fields replaced, removed or added (types, bounds, token edges)", RULE) as tally:

        @fuzz_settings(200)
        @given(mutations=st.lists(MUTATIONS, min_size=1, max_size=3))
        @example(mutations=[("replace", "number", True)])
        @example(mutations=[("replace", "number", 1.0)])
        @example(mutations=[("replace", "number", "100")])
        @example(mutations=[("replace", "number", 10**400)])
        @example(mutations=[("replace", "merchantAccountId", "x" * 64)])
        def run(mutations: list[tuple[str, str, Any]]) -> None:
            request: dict[str, Any] = valid_request()
            for kind, name, value in mutations:
                if kind == "remove":
                    request.pop(name, None)
                else:
                    request[name] = value
            text = json.dumps(request)
            answer, expected = _post(handler, service_env, post_event(text))
            assert_right(tally, answer, expected, lambda: text[:300])

        run()


def _with_number_literal(literal: str) -> str:
    text = json.dumps({**valid_request(), "number": 0})
    return text.replace('"number": 0', f'"number": {literal}')


RAW_TEXT_EDITS = st.one_of(
    NUMBER_LITERALS.map(lambda literal: ("number literal", literal)),
    st.sampled_from(sorted(ALLOWED)).map(lambda name: ("duplicate", name)),
    st.sampled_from(["\ufeff", "  \t\r\n", "//c\n", "/*c*/", "\x00", "\u00a0", "\u2028", "[", "{}"]).map(
        lambda prefix: ("prefix", prefix)
    ),
    st.sampled_from([",", "}", " \n\t", "\x00", "garbage", "{}", ";", "\u3000"]).map(lambda suffix: ("suffix", suffix)),
    st.just(("single quotes", "")),
    st.just(("trailing comma", "")),
    st.just(("whitespace everywhere", "")),
)


def test_raw_text_edits_and_number_literals(handler: ModuleType, service_env: ServiceEnv) -> None:
    case = "number literals (floats, exponents, strings, booleans, huge ints, NaN), duplicates, BOM, junk"
    with tallied(case, RULE) as tally:

        @fuzz_settings(150)
        @given(edit=RAW_TEXT_EDITS)
        @example(edit=("number literal", "NaN"))
        @example(edit=("number literal", "1E400"))
        @example(edit=("number literal", "9" * 4301))
        @example(edit=("duplicate", "requestId"))
        @example(edit=("prefix", "\ufeff"))
        @example(edit=("whitespace everywhere", ""))
        def run(edit: tuple[str, str]) -> None:
            kind, argument = edit
            base = json.dumps(valid_request())
            if kind == "number literal":
                text = _with_number_literal(argument)
            elif kind == "duplicate":
                value = json.dumps(valid_request()[argument] if argument in REQUIRED else "M1")
                text = base[:-1] + f', "{argument}": {value}' + "}"
            elif kind == "prefix":
                text = argument + base
            elif kind == "suffix":
                text = base + argument
            elif kind == "single quotes":
                text = base.replace('"', "'")
            elif kind == "trailing comma":
                text = base[:-1] + ",}"
            else:
                text = base.replace(":", " \n:\t").replace(",", "\r\n ,  ")
            answer, expected = _post(handler, service_env, post_event(text))
            assert_right(tally, answer, expected, lambda: text[:300])

        run()


def _splice(data: bytes, insert: bytes, position: int) -> bytes:
    at = position % (len(data) + 1)
    return data[:at] + insert + data[at:]


def test_arbitrary_bytes_and_invalid_utf8(handler: ModuleType, service_env: ServiceEnv) -> None:
    with tallied("arbitrary bytes, and invalid UTF-8 spliced into a valid request", RULE) as tally:
        valid_bytes = st.builds(lambda: json.dumps(valid_request()).encode())

        @fuzz_settings(150)
        @given(
            raw=st.one_of(
                st.binary(max_size=600),
                st.builds(_splice, valid_bytes, INVALID_UTF8, st.integers(min_value=0, max_value=200)),
            ),
            as_base64=st.booleans(),
        )
        @example(raw=b"\xed\xa0\x80", as_base64=True)
        @example(raw=b'{"requestId": "\xff"}', as_base64=False)
        def run(raw: bytes, as_base64: bool) -> None:
            answer, expected = _post(handler, service_env, raw_post_event(raw, as_base64=as_base64))
            assert_right(tally, answer, expected, lambda: repr(raw[:300]))

        run()


def test_valid_request_in_other_encodings(handler: ModuleType, service_env: ServiceEnv) -> None:
    case = "a request encoded as UTF-16/32, UTF-8 with BOM, EBCDIC, Latin-1, Shift-JIS, GB18030"
    with tallied(case, RULE) as tally:

        @fuzz_settings(60)
        @given(encoding=ENCODINGS, non_ascii=st.sampled_from(["", "é", "日本", "\u00a0"]), as_base64=st.booleans())
        def run(encoding: str, non_ascii: str, as_base64: bool) -> None:
            request = valid_request()
            if non_ascii:
                request["templateCode"] = f"T{non_ascii}"
            raw = json.dumps(request, ensure_ascii=False).encode(encoding, errors="replace")
            answer, expected = _post(handler, service_env, raw_post_event(raw, as_base64=as_base64))
            assert_right(tally, answer, expected, lambda: f"{encoding} {raw[:200]!r}")

        run()


def _base64_body(kind: str) -> str | None:
    valid = json.dumps(valid_request()).encode()
    bodies: dict[str, str | None] = {
        "plain valid": valid.decode(),
        "base64 valid": base64.b64encode(valid).decode(),
        "plain invalid": '{"number": 1}',
        "base64 invalid": base64.b64encode(b'{"number": 1}').decode(),
        "base64 of invalid UTF-8": base64.b64encode(b"\xff\xfe{}").decode(),
        "garbage": "%%%not base64%%%",
        "empty": "",
        "missing": None,
        "base64 with newlines": base64.encodebytes(valid).decode(),
        "url-safe base64": base64.urlsafe_b64encode(valid + b"\xfb\xff").decode(),
        "base64 without padding": base64.b64encode(valid + b"x").decode().rstrip("="),
        "base64 of base64": base64.b64encode(base64.b64encode(valid)).decode(),
    }
    return bodies[kind]


BODY_KINDS = st.sampled_from(
    [
        *["plain valid", "base64 valid", "plain invalid", "base64 invalid", "base64 of invalid UTF-8", "garbage"],
        *["empty", "missing", "base64 with newlines", "url-safe base64", "base64 without padding", "base64 of base64"],
    ]
)


def test_is_base64_encoded_flag_with_matching_and_mismatching_bodies(
    handler: ModuleType, service_env: ServiceEnv
) -> None:
    case = "isBase64Encoded true/false/missing/garbage with matching and mismatching bodies"
    with tallied(case, RULE) as tally:

        @fuzz_settings(120)
        @given(flag=FLAGS, kind=BODY_KINDS)
        @example(flag=True, kind="plain valid")
        @example(flag=False, kind="base64 valid")
        @example(flag="MISSING", kind="base64 valid")
        def run(flag: Any, kind: str) -> None:
            event = post_event(_base64_body(kind), flag=flag)
            if flag == "MISSING":
                del event["isBase64Encoded"]
            answer, expected = _post(handler, service_env, event)
            assert_right(tally, answer, expected, lambda: f"flag={flag!r} body={kind}")

        run()


HEADERS = st.one_of(
    st.none(),
    st.dictionaries(TEXT, TEXT, max_size=6),
    st.fixed_dictionaries(
        {
            "Content-Type": st.sampled_from(
                ["text/plain", "application/xml", "application/json; charset=latin-1", "", "\ud800", "*/*"]
            ),
            "Content-Length": st.sampled_from(["0", "-1", "99999999999", "abc"]),
            "Content-Encoding": st.sampled_from(["gzip", "identity", "br"]),
        }
    ),
)
IDENTITIES: st.SearchStrategy[Any] = st.sampled_from(
    [
        *["MISSING", None, "x", {}, {"identity": None}, {"identity": "x"}, {"identity": {}}],
        *[{"identity": {"caller": "AIDA1"}}, {"identity": {"userArn": "arn:aws:iam::123456789012:role/app"}}],
    ]
)


def _expected_caller(context: Any) -> str:
    identity = context.get("identity") if isinstance(context, dict) else None
    if not isinstance(identity, dict):
        return "unknown"
    return str(identity.get("userArn") or identity.get("caller") or "unknown")


def test_arbitrary_headers_and_caller_identities(handler: ModuleType, service_env: ServiceEnv) -> None:
    case = "arbitrary headers, multi-value headers and caller identities around a valid request"
    with tallied(case, "headers never matter: sent once, 404 UPSTREAM_FAILED, caller recorded") as tally:

        @fuzz_settings(25)
        @given(headers=HEADERS, context=IDENTITIES)
        def run(headers: dict[str, str] | None, context: Any) -> None:
            request = valid_request()
            event = post_event(json.dumps(request))
            event["headers"] = headers
            event["multiValueHeaders"] = {k: [v, v] for k, v in headers.items()} if headers else headers
            if context == "MISSING":
                del event["requestContext"]
            else:
                event["requestContext"] = context
            answer, expected = _post(handler, service_env, event)
            assert_right(tally, answer, expected, lambda: f"headers={headers!r:.200} context={context!r}")
            record = service_env.ledger_item(request["requestId"])
            assert record is not None
            assert record["caller"]["S"] == _expected_caller(context)

        run()


def _routing_expectation(resource: Any, method: Any, parameters: Any, body: Any) -> tuple[int, str, set[str]]:
    """(status, error code, fields) per the README: 404 unknown route, 405 other methods, then the route's rules."""
    verb = method.upper() if isinstance(method, str) and method.isascii() else ""
    routes = (POST_ROUTE, GET_ROUTE)
    if resource == POST_ROUTE and verb == "POST":
        expected = expect_for_event_body(body, False)
        assert expected.kind == "invalid", "the routing fuzz only sends invalid bodies"
        return 400, "INVALID_REQUEST", set(expected.fields)
    if resource == GET_ROUTE and verb == "GET":
        request_id = parameters.get("requestId") if isinstance(parameters, dict) else None
        if is_token(request_id, 128):
            return 404, "NOT_FOUND", set()
        return 400, "INVALID_REQUEST", {"requestId"}
    if isinstance(resource, str) and resource in routes:
        return 405, "METHOD_NOT_ALLOWED", set()
    return 404, "NOT_FOUND", set()


def test_arbitrary_resources_methods_and_path_parameters(handler: ModuleType, service_env: ServiceEnv) -> None:
    case = "arbitrary or missing resources, methods and path parameters"
    with tallied(case, "404 unknown route, 405 other method, 400/404 by requestId; nothing sent") as tally:

        @fuzz_settings(200)
        @given(
            # Half of the time one of the two real routes with its method; anything at all otherwise.
            route=st.one_of(
                st.sampled_from([(POST_ROUTE, "POST"), (GET_ROUTE, "GET")]),
                st.tuples(
                    st.one_of(
                        st.sampled_from([POST_ROUTE, GET_ROUTE, "/", "", "/budget-updates/", "/BUDGET-UPDATES"]),
                        st.just("MISSING"),
                        TEXT,
                        JSON_SCALARS,
                    ),
                    st.one_of(
                        st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get", "Post"]),
                        st.just("MISSING"),
                        TEXT,
                        JSON_SCALARS,
                    ),
                ),
            ),
            parameters=st.one_of(
                st.none(),
                st.just({}),
                st.dictionaries(TEXT, JSON_VALUES, max_size=3),
                st.fixed_dictionaries({"requestId": st.one_of(TOKENS_AT_THE_EDGES, JSON_VALUES)}),
                st.sampled_from(["x", [1], 5]),
            ),
            body=st.one_of(st.none(), TEXT, st.just('{"number": 1}')),
        )
        @example(route=(GET_ROUTE, "GET"), parameters={"requestId": "a b"}, body=None)
        @example(route=(GET_ROUTE, "GET"), parameters={"requestId": "\ud800"}, body=None)
        @example(route=(GET_ROUTE, "GET"), parameters="x", body=None)
        @example(route=(POST_ROUTE, "\ud800"), parameters=None, body=None)
        def run(route: tuple[Any, Any], parameters: Any, body: Any) -> None:
            resource, method = route
            event = post_event(body)
            event["pathParameters"] = parameters
            for key, value in (("resource", resource), ("httpMethod", method)):
                if value == "MISSING":
                    del event[key]
                else:
                    event[key] = value
            status, code, fields = _routing_expectation(
                event.get("resource"), event.get("httpMethod"), parameters, body
            )
            answer = invoke(handler, service_env, event)
            tally.cases += 1
            tally.statuses[answer.status] = tally.statuses.get(answer.status, 0) + 1
            tally.sent_invalid += answer.sent
            problems = error_problems(answer, status, code)
            if not problems and fields:
                named = {d["field"] for d in answer.body["error"]["details"]}
                problems += [] if named == fields else [f"details name {sorted(named)}, expected {sorted(fields)}"]
            problems += [f"{answer.sent} request(s) reached AlipayHK"] if answer.sent else []
            if problems:
                tally.broken += 1
                tally.first_problem = tally.first_problem or problems[0]
            assert not problems, f"{problems} for {resource!r} {method!r} {parameters!r:.200}"

        run()


def _padded(text: str, size: int) -> bytes:
    """``text`` (a JSON object) with spaces before its closing brace, ``size`` bytes long."""
    raw = text.encode()
    assert len(raw) <= size
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def test_bodies_around_and_far_over_the_size_limit(handler: ModuleType, service_env: ServiceEnv) -> None:
    case = "bodies around and far over 16 KiB (to 6 MiB), plain and base64"
    with tallied(case, "413 over 16 KiB whatever the content, else the content's answer; nothing sent") as tally:

        @fuzz_settings(60)
        @given(
            size=st.one_of(
                st.integers(min_value=MAX_BODY_BYTES - 64, max_value=MAX_BODY_BYTES + 64),
                st.integers(min_value=MAX_BODY_BYTES, max_value=4 * MAX_BODY_BYTES),
                st.sampled_from([1 << 20, 6 << 20]),
            ),
            valid=st.booleans(),
            as_base64=st.booleans(),
        )
        @example(size=MAX_BODY_BYTES + 1, valid=True, as_base64=True)
        @example(size=6 << 20, valid=True, as_base64=False)
        def run(size: int, valid: bool, as_base64: bool) -> None:
            request = valid_request() if valid else {"number": 1}
            raw = _padded(json.dumps(request), size)
            answer, expected = _post(handler, service_env, raw_post_event(raw, as_base64=as_base64))
            assert_right(tally, answer, expected, lambda: f"{size} bytes, valid={valid}")

        run()


def _nested(shape: str, depth: int) -> str:
    if shape == "arrays":
        return "[" * depth + "]" * depth
    if shape == "objects":
        return '{"a":' * depth + "1" + "}" * depth
    inner = "[" * depth + "]" * depth
    request = json.dumps(valid_request())
    if shape == "unknown field":
        return request[:-1] + f', "extra": {inner}' + "}"
    return (
        request.replace('"number": 1', f'"{shape}": {inner}')
        if shape == "number"
        else request.replace(f'"{shape}": ', f'"{shape}": {inner}, "x{shape}": ')
    )


def test_deeply_nested_bodies(handler: ModuleType, service_env: ServiceEnv) -> None:
    case = "deeply nested arrays and objects, alone and inside fields (depth 1 to 8000)"
    with tallied(case, RULE + "; past the parser's depth the body itself is named") as tally:

        @fuzz_settings(80)
        @given(
            shape=st.sampled_from(["arrays", "objects", "unknown field", "number", "requestId"]),
            depth=st.one_of(st.integers(min_value=1, max_value=8000), st.sampled_from([900, 1000, 5000, 8000])),
        )
        def run(shape: str, depth: int) -> None:
            text = _nested(shape, depth)
            answer, expected = _post(handler, service_env, post_event(text))
            if expected.kind == "invalid" and isinstance(answer.body, dict):
                # Where the recursion limit bites depends on the stack depth of the caller: the handler
                # may name the body where this test's own parse still named the field, never the reverse.
                named = {d.get("field") for d in (answer.body.get("error") or {}).get("details") or []}
                if named == {"body"}:
                    expected = Expectation("invalid", frozenset({"body"}))
            assert_right(tally, answer, expected, lambda: f"{shape} x{depth}")

        run()


def test_lone_surrogates_anywhere(handler: ModuleType, service_env: ServiceEnv) -> None:
    case = "unpaired surrogates in member names, field values and raw text (escaped and unescaped)"
    with tallied(case, RULE) as tally:

        @fuzz_settings(100)
        @given(
            where=st.sampled_from([*sorted(ALLOWED), "member name", "unknown field value", "raw text"]),
            surrogates=st.text(SURROGATES, min_size=1, max_size=3),
            escaped=st.booleans(),
            as_base64=st.booleans(),
        )
        @example(where="member name", surrogates="\ud800", escaped=True, as_base64=False)
        @example(where="raw text", surrogates="\udc00", escaped=False, as_base64=False)
        def run(where: str, surrogates: str, escaped: bool, as_base64: bool) -> None:
            request: dict[str, Any] = valid_request()
            if where == "member name":
                request[f"k{surrogates}"] = 1
            elif where == "unknown field value":
                request["extra"] = f"v{surrogates}"
            elif where in ALLOWED:
                request[where] = f"A{surrogates}"
            if where == "raw text":
                event = post_event(surrogates)
            else:
                text = json.dumps(request, ensure_ascii=escaped)
                event = raw_post_event(text.encode("utf-8", errors="surrogatepass"), as_base64=as_base64)
            answer, expected = _post(handler, service_env, event)
            assert_right(tally, answer, expected, lambda: f"{where} {surrogates!r} escaped={escaped}")

        run()
