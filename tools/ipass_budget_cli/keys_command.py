"""``ipass-budget keys generate``: a new RSA-2048 key pair and the signing-secret file it belongs in.

Only the public key is printed (single-line base64 SubjectPublicKeyInfo, the form AlipayHK
onboarding asks for); the private key goes only into the 0600 secret file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ipass_budget.errors import ConfigurationError
from ipass_budget.keys import generate_private_key, load_public_key, private_key_pem, public_key_base64, public_key_pem
from ipass_budget.models import token_problem
from ipass_budget.signing import RSA256
from ipass_budget_cli.exit_codes import ExitCode
from ipass_budget_cli.private_file import write_private_file
from ipass_budget_cli.render import print_problem


class KeyInputError(ValueError):
    """An option value that cannot go into a signing secret."""


def check_inputs(args: argparse.Namespace) -> None:
    for name, value, limit in (
        ("--client-id", args.client_id, 128),
        ("--merchant-account-id", args.merchant_account_id, 64),
    ):
        if problem := token_problem(value, limit):
            raise KeyInputError(f"{name} {problem}")
    version: str = args.key_version
    if not (version.isascii() and version.isdigit()) or not version.strip("0"):
        raise KeyInputError("--key-version must be a positive whole number")


def alipay_public_key(value: str | None) -> str:
    """AlipayHK's public key as PEM, from PEM text, bare base64 SPKI or ``@FILE``; "" when not given."""
    if value is None:
        return ""
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyInputError(f"cannot read --alipay-public-key file {value[1:]}: {_why(exc)}") from None
    try:
        return public_key_pem(load_public_key(text, "--alipay-public-key"))
    except ConfigurationError as exc:
        raise KeyInputError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    try:
        check_inputs(args)
        alipay_key = alipay_public_key(args.alipay_public_key)
    except KeyInputError as exc:
        print_problem(str(exc), "nothing was written: fix the option and run the command again")
        return ExitCode.REFUSED
    if out.exists() and not args.force:
        print_problem(f"{out} exists", "choose another --out, or pass --force to replace it (its old key is lost)")
        return ExitCode.REFUSED
    key = generate_private_key()
    secret = {
        "clientId": args.client_id,
        "merchantAccountId": args.merchant_account_id,
        "privateKey": private_key_pem(key),
        "keyVersion": args.key_version,
        "algorithm": RSA256,
        "alipayPublicKey": alipay_key,
    }
    try:
        write_private_file(out, json.dumps(secret, indent=2) + "\n", replace=args.force)
    except FileExistsError:
        print_problem(f"{out} exists", "choose another --out, or pass --force to replace it (its old key is lost)")
        return ExitCode.REFUSED
    except OSError as exc:
        print_problem(f"cannot write {out}: {_why(exc)}", "choose a writable --out")
        return ExitCode.REFUSED
    print(public_key_base64(key))
    print(next_steps(args, out, has_alipay_key=bool(alipay_key)), file=sys.stderr)
    return ExitCode.OK


def next_steps(args: argparse.Namespace, out: Path, *, has_alipay_key: bool) -> str:
    steps = [
        f"Wrote the signing secret to {out} (mode 0600). It holds the private key: keep it out of version "
        "control, chat and tickets.",
        "Next steps:",
        f"  1. Register the public key printed above with AlipayHK for Client-Id {args.client_id}, "
        f"keyVersion {args.key_version}.",
    ]
    if has_alipay_key:
        step = 2
    else:
        steps.append(
            f'  2. Fill in AlipayHK\'s public key as "alipayPublicKey" in {out} (it is empty now; '
            "'secret put' refuses the file until it is set)."
        )
        step = 3
    steps += [
        f"  {step}. ipass-budget secret put --secret-id ipass-budget/signing-secret --file {out}",
        f"  {step + 1}. Delete {out} once the secret is stored (or keep it only where your key policy allows).",
    ]
    return "\n".join(steps)


def _why(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
