"""``ipass-budget``: the operator CLI. argparse wiring only; each command lives in its own module."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

from ipass_budget_cli import (
    cli_version,
    keys_command,
    reconcile_command,
    secret_command,
    status_command,
    update_command,
)
from ipass_budget_cli.exit_codes import ExitCode, epilog

Command = Callable[[argparse.Namespace], int]
DESCRIPTION_WIDTH = 96

DESCRIPTION = """\
Operate ipass-budget: create the partner key pair and signing secret, change a template's budget
through the API (at most once per requestId), look up a request, and reconcile unknown outcomes."""

UPDATE_EPILOG = """\
examples:
  ipass-budget update --api http://127.0.0.1:3000 --template DEMO-VALID --append 100
  ipass-budget update --api https://abc123.execute-api.ap-east-1.amazonaws.com/prod \\
      --template T1 --subtract 50 --request-id order-4711

The requestId is printed (on stderr) before the call; on UNKNOWN or no answer, run the same
command with --request-id: the service applies it at most once.

"""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 3600 seconds")
    return value


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ipass-budget", description=DESCRIPTION, epilog=epilog(), formatter_class=_formatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {cli_version()}")
    parser.set_defaults(run=None, help_parser=parser)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_keys(commands)
    _add_secret(commands)
    _add_update(commands)
    _add_status(commands)
    _add_reconcile(commands)
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    run: Command | None,
    *,
    extra_epilog: str = "",
) -> argparse.ArgumentParser:
    sub = commands.add_parser(
        name,
        help=summary,
        description=textwrap.fill(summary, DESCRIPTION_WIDTH),
        epilog=extra_epilog + epilog(),
        formatter_class=_formatter,
    )
    sub.set_defaults(run=run, help_parser=sub)
    return sub


def _add_keys(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = _command(commands, "keys", "partner key pairs", None)
    actions = keys.add_subparsers(title="actions", metavar="ACTION")
    generate = _command(
        actions,
        "generate",
        "generate an RSA-2048 key pair: print the public key (base64 SubjectPublicKeyInfo, for AlipayHK "
        "onboarding) and write the signing-secret JSON, private key included, to --out (mode 0600)",
        keys_command.run,
    )
    generate.add_argument("--client-id", required=True, help="the Client-Id AlipayHK issued")
    generate.add_argument("--merchant-account-id", required=True, help="default merchantAccountId for requests")
    generate.add_argument("--out", required=True, type=Path, metavar="FILE", help="where to write the secret JSON")
    generate.add_argument("--key-version", default="1", help="keyVersion of the new key (default: %(default)s)")
    generate.add_argument(
        "--alipay-public-key",
        metavar="PEM_OR_BASE64_OR_@FILE",
        help="AlipayHK's public key; without it alipayPublicKey stays empty: fill it in before 'secret put'",
    )
    generate.add_argument("--force", action="store_true", help="replace --out if it exists (its old key is lost)")


def _add_secret(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    secret = _command(commands, "secret", "the signing secret in Secrets Manager", None)
    actions = secret.add_subparsers(title="actions", metavar="ACTION")
    put = _command(
        actions,
        "put",
        "validate a signing-secret file as the service would, then create the secret or store a new version of it; "
        "prints the ARN and version id, never the content",
        secret_command.run,
    )
    put.add_argument("--secret-id", required=True, help="secret name (created if missing) or ARN")
    put.add_argument(
        "--file", required=True, type=Path, metavar="FILE", help="signing-secret JSON (contract section 3)"
    )
    put.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    put.add_argument(
        "--kms-key-id",
        metavar="KEY",
        help="KMS key (id, alias or ARN) to encrypt a NEW secret with (default aws/secretsmanager); "
        "set the stack's SigningSecretKmsKeyArn to the same key",
    )


def _add_api_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--api",
        required=True,
        metavar="URL",
        help="the stage URL (https://ID.execute-api.REGION.amazonaws.com/prod) or the stack's ApiUrl output",
    )
    sub.add_argument("--json", action="store_true", help="print {httpStatus, exitCode, origin, body} as JSON")
    sub.add_argument(
        "--sign",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="SigV4-sign with your AWS credentials (default: on, except for loopback URLs)",
    )
    sub.add_argument("--region", help="region to sign for (default: from an execute-api host, else AWS config)")
    sub.add_argument(
        "--timeout",
        type=_seconds,
        default=35.0,
        metavar="S",
        help="seconds to wait for the answer (default: %(default)s)",
    )


def _add_update(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    update = _command(
        commands,
        "update",
        "append to or subtract from a template's budget through the API, at most once per requestId",
        update_command.run,
        extra_epilog=UPDATE_EPILOG,
    )
    _add_api_options(update)
    update.add_argument("--template", required=True, metavar="T", help="templateCode")
    change = update.add_mutually_exclusive_group(required=True)
    change.add_argument("--append", metavar="N", help="add N (1-999999) to the budget")
    change.add_argument("--subtract", metavar="N", help="subtract N (1-999999) from the budget")
    update.add_argument("--request-id", metavar="ID", help="idempotency key; default: a new cli-<uuid>, printed first")
    update.add_argument("--merchant-account-id", metavar="M", help="default: the signing secret's")


def _add_status(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = _command(commands, "status", "show the ledger record of a requestId", status_command.run)
    status.add_argument("request_id", metavar="REQUEST_ID")
    _add_api_options(status)


def _add_reconcile(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reconcile = _command(
        commands,
        "reconcile",
        "settle an UNKNOWN request (or a SENDING one whose lease ended) after checking AlipayHK: records "
        "SUCCEEDED or FAILED with who, when and a note, directly in the ledger table",
        reconcile_command.run,
    )
    reconcile.add_argument("request_id", metavar="REQUEST_ID")
    decision = reconcile.add_mutually_exclusive_group(required=True)
    decision.add_argument("--applied", dest="applied", action="store_true", help="AlipayHK applied it: SUCCEEDED")
    decision.add_argument("--not-applied", dest="applied", action="store_false", help="it was not applied: FAILED")
    reconcile.add_argument("--table", metavar="NAME", help="ledger table (default: $LEDGER_TABLE_NAME)")
    reconcile.add_argument("--note", default="", help="why: what was checked, ticket number")
    reconcile.add_argument(
        "--retention-days", type=float, default=7.0, metavar="DAYS", help="replay the decision this long (default: 7)"
    )
    reconcile.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    reconcile.add_argument("--json", action="store_true", help="print {exitCode, record} as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Command | None = args.run
    if run is None:  # "ipass-budget" or "ipass-budget keys" alone: say what is missing
        args.help_parser.print_help(sys.stderr)
        return ExitCode.USAGE
    return int(run(args))


if __name__ == "__main__":
    sys.exit(main())
