"""SigV4 signing and answers the local stack cannot give, against a recording HTTP server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from ipass_budget_cli.api_client import check_api_url, is_loopback, region_for, request_id_segment
from tests.cli.support import CliResult, RecordingServer, Reply, expected_sigv4_signature

Cli = Callable[..., CliResult]
ACCESS_KEY, SECRET_KEY, SESSION_TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token-123"


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)


def test_sign_adds_a_valid_sigv4_signature(cli: Cli, credentials: None) -> None:
    with RecordingServer() as server:
        result = cli(
            "update", "--api", server.url, "--template", "T1", "--append", "5", "--request-id", "r-1",
            "--sign", "--region", "ap-east-1",
        )  # fmt: skip

    assert result.code == 0
    [recorded] = server.requests
    assert json.loads(recorded.body) == {
        "requestId": "r-1",
        "templateCode": "T1",
        "updateType": "APPEND_BUDGET",
        "number": 5,
    }
    authorization = recorded.headers["Authorization"]
    assert re.match(
        rf"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/\d{{8}}/ap-east-1/execute-api/aws4_request, ", authorization
    )
    assert recorded.headers["X-Amz-Security-Token"] == SESSION_TOKEN
    signature = authorization.rsplit("Signature=", 1)[1]
    assert signature == expected_sigv4_signature(recorded, SECRET_KEY, "ap-east-1")
    assert SECRET_KEY not in result.out + result.err


def test_status_signs_the_encoded_path(cli: Cli, credentials: None) -> None:
    body = json.dumps({"requestId": "a/b%c", "state": "SUCCEEDED"}).encode()
    with RecordingServer(Reply(200, body)) as server:
        result = cli("status", "a/b%c", "--api", server.url, "--sign", "--region", "eu-west-1")

    [recorded] = server.requests
    assert recorded.path == "/budget-updates/a%2Fb%25c"
    signature = recorded.headers["Authorization"].rsplit("Signature=", 1)[1]
    assert signature == expected_sigv4_signature(recorded, SECRET_KEY, "eu-west-1")
    assert result.code == 0
    assert "state      SUCCEEDED" in result.out


def test_loopback_urls_are_not_signed_by_default(cli: Cli, credentials: None) -> None:
    with RecordingServer() as server:
        result = cli("update", "--api", server.url, "--template", "T1", "--append", "5")

    assert result.code == 0
    [recorded] = server.requests
    assert "Authorization" not in recorded.headers
    assert "X-Amz-Date" not in recorded.headers


def test_sign_without_credentials_exits_7_and_sends_nothing(cli: Cli) -> None:
    with RecordingServer() as server:
        result = cli("update", "--api", server.url, "--template", "T1", "--append", "5", "--sign", "--region", "x-1")

    assert result.code == 7
    assert "no AWS credentials" in result.err
    assert "--no-sign" in result.err
    assert server.requests == []


def test_sign_without_a_region_exits_7(cli: Cli, credentials: None) -> None:
    with RecordingServer() as server:
        result = cli("status", "r-1", "--api", server.url, "--sign")
    assert result.code == 7
    assert "--region" in result.err
    assert server.requests == []


@pytest.mark.parametrize(
    ("reply", "code", "says"),
    [
        (Reply(403, b'{"message":"Missing Authentication Token"}'), 7, "execute-api:Invoke"),
        (Reply(200, b"<html>proxy login</html>", "text/html"), 7, "<html>proxy login</html>"),
        (Reply(504, b'{"message": "Endpoint request timed out"}'), 5, "--request-id r-9"),
        (Reply(429, b'{"message": "Too Many Requests"}'), 5, "Retry later"),
        (Reply(404, b'{"error":{"code":"NOT_FOUND","message":"no such route","details":[]}}'), 7, "--api"),
    ],
)
def test_answers_that_are_not_the_service_s(cli: Cli, reply: Reply, code: int, says: str) -> None:
    with RecordingServer(reply) as server:
        result = cli("update", "--api", server.url, "--template", "T1", "--append", "5", "--request-id", "r-9")
        as_json = cli(
            "update", "--api", server.url, "--template", "T1", "--append", "5", "--request-id", "r-9", "--json"
        )

    assert result.code == code
    assert says in result.out
    document = as_json.json()
    assert (document["httpStatus"], document["exitCode"]) == (reply.status, code)


def test_region_comes_from_the_option_then_the_execute_api_host_then_the_configuration() -> None:
    host = "https://abc123.execute-api.ap-east-1.amazonaws.com/prod"
    assert region_for(host, "eu-west-1", "us-east-1") == "eu-west-1"
    assert region_for(host, None, "us-east-1") == "ap-east-1"
    assert region_for("https://api.example.com/prod", None, "us-east-1") == "us-east-1"
    assert region_for("https://api.example.com/prod", None, None) is None


def test_loopback_detection_and_api_url_rules() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("10.0.0.1", "example.com", "abc.execute-api.us-east-1.amazonaws.com"))
    assert check_api_url("https://api.example.com/prod/") == "https://api.example.com/prod"
    stack_output = "https://abc123.execute-api.ap-east-1.amazonaws.com/prod/budget-updates"  # the ApiUrl output
    assert check_api_url(stack_output) == "https://abc123.execute-api.ap-east-1.amazonaws.com/prod"
    for bad in ("http://api.example.com", "ftp://x", "https://x/prod?a=1", "not a url"):
        with pytest.raises(ValueError, match="--api"):
            check_api_url(bad)
    assert request_id_segment("a/b?c#d%e") == "a%2Fb%3Fc%23d%25e"
    assert request_id_segment("..") == "%2E%2E"


def test_plain_http_to_a_remote_host_is_refused(cli: Cli) -> None:
    result = cli("update", "--api", "http://api.example.com", "--template", "T1", "--append", "5")
    assert result.code == 6
    assert "https" in result.err
