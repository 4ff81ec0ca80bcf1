"""parse_budget_update accepts exactly the inputs of contract section 4; to_body() is canonical."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ipass_budget.errors import InvalidRequestError
from ipass_budget.models import BudgetUpdate, UpdateType, canonical_json, parse_budget_update

LIMITS = {"requestId": 128, "templateCode": 32, "merchantAccountId": 64}
PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
REQUIRED = ("requestId", "templateCode", "updateType", "number")


def token(max_size: int) -> st.SearchStrategy[str]:
    return st.text(PRINTABLE, min_size=1, max_size=max_size)


@st.composite
def valid_inputs(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {
        "requestId": draw(token(LIMITS["requestId"])),
        "templateCode": draw(token(LIMITS["templateCode"])),
        "updateType": draw(st.sampled_from(["APPEND_BUDGET", "SUBTRACT_BUDGET"])),
        "number": draw(st.integers(min_value=1, max_value=999_999)),
    }
    if draw(st.booleans()):
        data["merchantAccountId"] = draw(token(LIMITS["merchantAccountId"]))
    # JSON object member order carries no meaning: shuffle it.
    return dict(draw(st.permutations(list(data.items()))))


def bad_token(max_size: int) -> st.SearchStrategy[object]:
    """Values a token field must refuse: wrong type, empty, too long, or a character outside 0x21-0x7E."""
    outside = st.characters(blacklist_characters=[chr(c) for c in range(0x21, 0x7F)])
    half = st.text(PRINTABLE, max_size=(max_size - 1) // 2)
    with_bad_char = st.tuples(half, outside, half).map("".join)
    return st.one_of(
        st.just(""),
        st.text(PRINTABLE, min_size=max_size + 1, max_size=max_size + 40),
        with_bad_char,
        st.integers(),
        st.floats(allow_nan=False),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )


BAD_VALUES: dict[str, st.SearchStrategy[object]] = {
    "requestId": bad_token(128),
    "templateCode": bad_token(32),
    "merchantAccountId": bad_token(64),
    "updateType": st.one_of(
        st.text().filter(lambda s: s not in ("APPEND_BUDGET", "SUBTRACT_BUDGET")),
        st.sampled_from(["append_budget", "APPEND_BUDGET ", "OVERRIDE_BUDGET", "SUBTRACT__BUDGET", ""]),
        st.integers(),
        st.none(),
        st.booleans(),
        st.lists(st.just("APPEND_BUDGET"), min_size=1, max_size=1),
    ),
    "number": st.one_of(
        st.integers(max_value=0),
        st.integers(min_value=1_000_000),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=1, max_value=999_999).map(float),
        st.integers(min_value=1, max_value=999_999).map(str),
        st.booleans(),
        st.none(),
        st.lists(st.integers(min_value=1, max_value=5), max_size=1),
    ),
}


@st.composite
def invalid_inputs(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    """A valid input with one or more fields broken (bad value, missing, or an unknown extra field)."""
    data = draw(valid_inputs())
    broken: set[str] = set()
    for name in draw(st.lists(st.sampled_from([*BAD_VALUES, "missing", "unknown"]), min_size=1, max_size=4)):
        if name == "missing":
            field = draw(st.sampled_from(REQUIRED))
            data.pop(field, None)
        elif name == "unknown":
            field = draw(st.text(min_size=1, max_size=20).filter(lambda s: s not in LIMITS and s not in REQUIRED))
            data[field] = draw(st.none() | st.integers() | st.text(max_size=5))
        else:
            field = name
            data[field] = draw(BAD_VALUES[name])
        broken.add(field)
    return data, broken


@given(data=valid_inputs())
@example(data={"requestId": "r", "templateCode": "t", "updateType": "APPEND_BUDGET", "number": 1})
@example(
    data={
        "requestId": "~" * 128,
        "templateCode": "!" * 32,
        "updateType": "SUBTRACT_BUDGET",
        "number": 999_999,
        "merchantAccountId": "2" * 64,
    }
)
def test_valid_inputs_are_accepted_unchanged(data: dict[str, Any]) -> None:
    parsed = parse_budget_update(data)
    assert parsed.request_id == data["requestId"]
    assert parsed.template_code == data["templateCode"]
    assert parsed.update_type is UpdateType(data["updateType"])
    assert parsed.number == data["number"]
    assert parsed.merchant_account_id == data.get("merchantAccountId")


@given(case=invalid_inputs())
@example(case=({"requestId": "r", "templateCode": "t", "updateType": "APPEND_BUDGET", "number": True}, {"number"}))
@example(case=({"requestId": "r", "templateCode": "t", "updateType": "APPEND_BUDGET", "number": 1.0}, {"number"}))
@example(case=({"requestId": "r", "templateCode": "t", "updateType": "APPEND_BUDGET", "number": "5"}, {"number"}))
@example(case=({"requestId": "r r", "templateCode": "t", "updateType": "APPEND_BUDGET", "number": 5}, {"requestId"}))
@example(
    case=({"requestId": "r", "templateCode": "t" * 33, "updateType": "APPEND_BUDGET", "number": 5}, {"templateCode"})
)
@example(case=({"requestId": "r", "templateCode": "t", "updateType": "APPEND_BUDGET", "number": 5, "x": 1}, {"x"}))
@example(case=({"requestId": "r", "templateCode": "t", "updateType": "APPEND_BUDGET"}, {"number"}))
def test_invalid_inputs_are_refused_naming_every_bad_field(case: tuple[dict[str, Any], set[str]]) -> None:
    data, broken = case
    with pytest.raises(InvalidRequestError) as caught:
        parse_budget_update(data)
    errors = caught.value.errors
    assert {e.field for e in errors} == broken
    assert all(e.message for e in errors)
    for e in errors:
        assert e.field in str(caught.value)
        assert e.as_dict() == {"field": e.field, "message": e.message}


@given(body=st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3)))
def test_a_body_that_is_not_an_object_is_refused_as_body(body: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_budget_update(body)
    assert [e.field for e in caught.value.errors] == ["body"]


def test_an_empty_object_names_every_required_field() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_budget_update({})
    assert [(e.field, e.message) for e in caught.value.errors] == [(name, "is required") for name in REQUIRED]


@given(data=valid_inputs(), default=token(64))
def test_to_body_is_deterministic_compact_json_that_round_trips(data: dict[str, Any], default: str) -> None:
    update = parse_budget_update(data).resolve(default)
    body = update.to_body()
    assert body == update.to_body()
    assert update.fingerprint() == update.fingerprint()
    # Compact: no whitespace outside strings (token values have none, so none at all).
    assert not any(ch in body for ch in b" \t\r\n")
    decoded = json.loads(body)
    assert list(decoded) == ["requestId", "merchantAccountId", "templateCode", "updateType", "number"]
    assert decoded == update.to_dict()
    assert decoded["merchantAccountId"] == data.get("merchantAccountId", default)
    assert type(decoded["number"]) is int
    # The body parses back (merchantAccountId is an allowed field) to the very same update ...
    again = parse_budget_update(decoded).resolve("other-default")
    assert again == update
    assert again.to_body() == body
    # ... and re-serialising it the canonical way gives the same bytes.
    assert canonical_json(decoded) == body


@given(first=valid_inputs(), second=valid_inputs())
def test_fingerprints_are_equal_exactly_for_equal_payloads(first: dict[str, Any], second: dict[str, Any]) -> None:
    a, b = parse_budget_update(first).resolve("M"), parse_budget_update(second).resolve("M")
    assert (a.fingerprint() == b.fingerprint()) == (a == b)


def test_omitted_merchant_account_id_takes_the_default() -> None:
    parsed = parse_budget_update({"requestId": "r", "templateCode": "t", "updateType": "APPEND_BUDGET", "number": 7})
    assert parsed.resolve("2160").merchant_account_id == "2160"
    explicit = parse_budget_update({**parsed_dict(), "merchantAccountId": "9999"})
    assert explicit.resolve("2160").merchant_account_id == "9999"


def parsed_dict() -> dict[str, Any]:
    return {"requestId": "r", "templateCode": "t", "updateType": "SUBTRACT_BUDGET", "number": 7}


def test_to_body_keeps_non_ascii_as_utf8() -> None:
    # Validation forbids non-ASCII, but the canonical form itself must not depend on it.
    update = BudgetUpdate("r", "商户", "t", UpdateType.APPEND_BUDGET, 1)
    assert "商户".encode() in update.to_body()
