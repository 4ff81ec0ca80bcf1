"""HTTP calls to the ipass-budget API, SigV4-signed with the caller's AWS credentials when needed.

Signing is on by default for every host but loopback (the local stack does not check it); the
region comes from ``--region``, else from an ``<id>.execute-api.<region>.amazonaws.com`` host, else
from the AWS configuration. Transport failures are told apart by whether the request may have
left this process: a refused connection sent nothing, a lost answer may have been applied.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import BotoCoreError
from urllib3.exceptions import MaxRetryError, NewConnectionError

from ipass_budget_cli import cli_version

UPDATES_PATH = "/budget-updates"
CONNECT_TIMEOUT_SECONDS = 10.0
# Enough of an unexpected answer to recognise it, never a whole page.
SNIPPET_CHARS = 200
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")


class ApiUsageError(ValueError):
    """The API URL or the signing set-up cannot work; nothing was sent."""


class NoCredentialsForSigningError(RuntimeError):
    """Signing is on but no AWS credentials or region could be found; nothing was sent."""


class ApiTransportError(RuntimeError):
    """No HTTP answer. ``may_have_arrived`` is False only when nothing can have reached the API."""

    def __init__(self, message: str, *, may_have_arrived: bool) -> None:
        super().__init__(message)
        self.may_have_arrived = may_have_arrived


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    """An HTTP answer; ``body`` is the decoded JSON or None when the answer was not JSON."""

    status: int
    headers: dict[str, str]
    body: Any
    snippet: str

    @property
    def retry_after(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == "retry-after"), None)


def check_api_url(url: str) -> str:
    """The API base URL (scheme, host, optional stage path) without a trailing slash or /budget-updates."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiUsageError(
            f"--api must be an http(s) URL such as https://ID.execute-api.REGION.amazonaws.com/STAGE, got {url!r}"
        )
    if parts.query or parts.fragment:
        raise ApiUsageError("--api must not carry a query string or fragment")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ApiUsageError("--api must use https (plain http only for 127.0.0.1, ::1 or localhost)")
    base = url.strip().rstrip("/")
    # The stack's ApiUrl output ends in /budget-updates: accept it as well as the stage URL.
    return base.removesuffix(UPDATES_PATH) if parts.path.rstrip("/").endswith(UPDATES_PATH) else base


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def region_for(url: str, explicit: str | None, configured: str | None) -> str | None:
    """``--region``, else the region of an execute-api host, else the AWS configuration's."""
    if explicit:
        return explicit
    match = _EXECUTE_API_HOST.match((urlsplit(url).hostname or "").lower())
    return match.group(1) if match else configured


def request_id_segment(request_id: str) -> str:
    """A requestId as one path segment: everything reserved percent-encoded, and dot-only ids too
    (``.`` and ``..`` would otherwise be resolved away as relative path segments)."""
    if request_id.strip(".") == "":
        return "%2E" * len(request_id)
    return quote(request_id, safe="")


class ApiClient:
    def __init__(
        self,
        api_url: str,
        *,
        sign: bool | None = None,
        region: str | None = None,
        timeout: float = 35.0,
        session: boto3.Session | None = None,
    ) -> None:
        self.base_url = check_api_url(api_url)
        host = urlsplit(self.base_url).hostname or ""
        self.signing = (not is_loopback(host)) if sign is None else sign
        self.timeout = timeout
        self._credentials: ReadOnlyCredentials | None = None
        self._region = ""
        if self.signing:
            self._prepare_signing(session or boto3.Session(), region)

    def _prepare_signing(self, session: boto3.Session, region: str | None) -> None:
        try:
            found = session.get_credentials()
            # Frozen once: an expired SSO session or a failing credential process shows here, not mid-call.
            credentials = found.get_frozen_credentials() if found is not None else None
            configured_region = session.region_name
        except BotoCoreError as exc:  # a broken profile, for example
            raise NoCredentialsForSigningError(f"the AWS credentials cannot be loaded: {exc}") from None
        if credentials is None:
            raise NoCredentialsForSigningError(
                "no AWS credentials found to sign the request (SigV4): configure them (aws configure, "
                "AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or pass --no-sign for a local API"
            )
        chosen = region_for(self.base_url, region, configured_region)
        if not chosen:
            raise NoCredentialsForSigningError(
                "no AWS region to sign for: pass --region, or set AWS_REGION / a profile region"
            )
        self._credentials, self._region = credentials, chosen

    @property
    def region(self) -> str:
        return self._region

    def post_update(self, payload: dict[str, Any]) -> ApiAnswer:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        return self._call("POST", self.base_url + UPDATES_PATH, body)

    def get_update(self, request_id: str) -> ApiAnswer:
        return self._call("GET", f"{self.base_url}{UPDATES_PATH}/{request_id_segment(request_id)}", None)

    def _call(self, method: str, url: str, body: bytes | None) -> ApiAnswer:
        headers = {"Accept": "application/json", "User-Agent": f"ipass-budget-cli/{cli_version()}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.signing:
            headers = self._signed_headers(method, url, body, headers)
        try:
            response = requests.request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=(min(CONNECT_TIMEOUT_SECONDS, self.timeout), self.timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise _transport_error(exc, url, self.timeout) from None
        return _answer(response)

    def _signed_headers(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
        assert self._credentials is not None  # noqa: S101 - set whenever signing is on
        request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
        SigV4Auth(self._credentials, "execute-api", self._region).add_auth(request)
        return {name: str(value) for name, value in request.headers.items()}


def _answer(response: requests.Response) -> ApiAnswer:
    text = response.content.decode("utf-8", errors="replace")
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = None
    snippet = " ".join(text.split())[:SNIPPET_CHARS]
    return ApiAnswer(response.status_code, dict(response.headers.items()), body, snippet)


def _transport_error(exc: requests.RequestException, url: str, timeout: float) -> ApiTransportError:
    host = urlsplit(url).netloc
    if isinstance(exc, requests.ConnectTimeout) or _never_connected(exc):
        return ApiTransportError(f"could not connect to {host}: {_reason(exc)}", may_have_arrived=False)
    if isinstance(exc, requests.exceptions.SSLError | requests.exceptions.ProxyError | requests.exceptions.InvalidURL):
        return ApiTransportError(f"could not reach {host}: {_reason(exc)}", may_have_arrived=False)
    if isinstance(exc, requests.ReadTimeout):
        return ApiTransportError(f"no answer from {host} within {timeout:g} s", may_have_arrived=True)
    return ApiTransportError(f"the connection to {host} failed: {_reason(exc)}", may_have_arrived=True)


def _never_connected(exc: requests.RequestException) -> bool:
    for arg in exc.args:
        reason = arg.reason if isinstance(arg, MaxRetryError) else arg
        if isinstance(reason, NewConnectionError):  # refused, unreachable, name not resolved
            return True
    return False


def _reason(exc: Exception) -> str:
    for arg in exc.args:
        reason = arg.reason if isinstance(arg, MaxRetryError) else arg
        if isinstance(reason, Exception):
            text = str(reason)
            # urllib3 prefixes the connection object's repr: keep the readable tail.
            return text.split(": ", 1)[-1] if text.startswith("<") else text
    return type(exc).__name__
