"""The CLI's exit codes: one table for every command, shown in ``--help`` and the README."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    USAGE = 2
    FAILED = 3
    REJECTED = 4
    RETRY_LATER = 5
    REFUSED = 6
    UNREACHABLE = 7
    MISCONFIGURED = 8
    NOT_FOUND = 9
    INTERRUPTED = 130


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "done: SUCCEEDED (update), found (status), written (keys, secret, reconcile)",
    ExitCode.USAGE: "usage error (unknown option, missing argument)",
    ExitCode.FAILED: "FAILED, final: AlipayHK did not apply the change; a new change needs a new requestId",
    ExitCode.REJECTED: "UPSTREAM_REJECTED: AlipayHK refused it before applying; fix the cause, retry same requestId",
    ExitCode.RETRY_LATER: (
        "UNKNOWN, REQUEST_IN_PROGRESS, DEPENDENCY_UNAVAILABLE or a gateway error: retry the same requestId later"
    ),
    ExitCode.REFUSED: "refused input, nothing sent or changed (local checks, 400, 413, 422 REQUEST_ID_REUSED)",
    ExitCode.UNREACHABLE: "API or AWS unreachable, unexpected answer (403 from IAM, not JSON) or no AWS credentials",
    ExitCode.MISCONFIGURED: "MISCONFIGURED: the service's signing secret or settings are broken (500)",
    ExitCode.NOT_FOUND: "no such requestId (status, reconcile)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C): an update's outcome is unknown, retry the same requestId",
}


def epilog() -> str:
    lines = ["exit codes:"]
    lines += [f"  {int(code):<4}{meaning}" for code, meaning in MEANINGS.items()]
    return "\n".join(lines)
