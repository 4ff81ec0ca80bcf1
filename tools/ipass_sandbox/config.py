"""The sandbox configuration (contract section 6): load, validate, save, and the generated demo set-up.

Shape::

    {"privateKey": "<PEM>",
     "clients": {"<Client-Id>": {"publicKeys": {"1": "<PEM or base64>"}}},
     "templates": [{"templateCode": ..., "merchantAccountId": ..., "status": ..., "budget": ..., "issued": ...}]}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ipass_budget.errors import ConfigurationError
from ipass_budget.keys import generate_private_key, load_private_key, load_public_key, private_key_pem, public_key_pem
from ipass_budget.signing import RSA256
from ipass_sandbox.templates import Template, TemplateError, TemplateStatus, parse_template

DEFAULT_STATE_DIR = Path(".sandbox")
CONFIG_FILE_NAME = "sandbox.json"
SECRET_FILE_NAME = "signing-secret.json"  # noqa: S105  # nosec B105  # a file name
DEMO_CLIENT_ID = "SANDBOXCLIENT01"
DEMO_KEY_VERSION = "1"
DEMO_MERCHANT_ACCOUNT_ID = "2160000000000001"
MAX_KEY_VERSION_DIGITS = 9


class SandboxConfigError(ValueError):
    """A configuration the sandbox cannot start with. Messages name fields, never key material."""


@dataclass(frozen=True)
class SandboxConfig:
    private_key: str = field(repr=False)
    # Client-Id -> keyVersion -> public key text (PEM or bare base64).
    clients: dict[str, dict[str, str]] = field(default_factory=dict)
    templates: tuple[Template, ...] = ()

    def sandbox_private_key(self) -> rsa.RSAPrivateKey:
        return load_private_key(self.private_key, "privateKey")

    def to_dict(self) -> dict[str, Any]:
        return {
            "privateKey": self.private_key,
            "clients": {cid: {"publicKeys": dict(keys)} for cid, keys in self.clients.items()},
            "templates": [template.to_dict() for template in self.templates],
        }


def is_key_version(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= MAX_KEY_VERSION_DIGITS


def parse_config(data: object) -> SandboxConfig:
    """Validate a decoded config and parse every key once, so bad keys fail at start-up."""
    if not isinstance(data, dict):
        raise SandboxConfigError("sandbox config must be a JSON object")
    unknown = sorted(str(name) for name in data if name not in ("privateKey", "clients", "templates"))
    if unknown:
        raise SandboxConfigError(f"unknown sandbox config fields: {', '.join(unknown)}")
    private_key = data.get("privateKey")
    if not isinstance(private_key, str) or not private_key.strip():
        raise SandboxConfigError("privateKey (the sandbox's own signing key) is required")
    try:
        load_private_key(private_key, "privateKey")
    except ConfigurationError as exc:
        raise SandboxConfigError(str(exc)) from None
    return SandboxConfig(
        private_key, _parse_clients(data.get("clients", {})), _parse_templates(data.get("templates", []))
    )


def _parse_clients(data: object) -> dict[str, dict[str, str]]:
    if not isinstance(data, dict):
        raise SandboxConfigError("clients must be an object keyed by Client-Id")
    clients: dict[str, dict[str, str]] = {}
    for client_id, entry in data.items():
        where = f"clients.{client_id}"
        if not client_id:
            raise SandboxConfigError("clients: a Client-Id must not be empty")
        if not isinstance(entry, dict) or not isinstance(entry.get("publicKeys"), dict):
            raise SandboxConfigError(f"{where} must be an object with publicKeys")
        keys: dict[str, str] = {}
        for version, text in entry["publicKeys"].items():
            if not is_key_version(version):
                raise SandboxConfigError(f"{where}.publicKeys: keyVersion {version[:20]!r} is not a whole number")
            if not isinstance(text, str):
                raise SandboxConfigError(f"{where}.publicKeys.{version} must be a PEM or base64 string")
            try:
                load_public_key(text, f"{where}.publicKeys.{version}")
            except ConfigurationError as exc:
                raise SandboxConfigError(str(exc)) from None
            keys[version] = text
        clients[client_id] = keys
    return clients


def _parse_templates(data: object) -> tuple[Template, ...]:
    if not isinstance(data, list):
        raise SandboxConfigError("templates must be a list")
    templates: dict[str, Template] = {}
    for index, entry in enumerate(data):
        try:
            template = parse_template(entry)
        except TemplateError as exc:
            raise SandboxConfigError(f"templates[{index}]: {exc}") from None
        if template.template_code in templates:
            raise SandboxConfigError(f"templates[{index}]: templateCode {template.template_code} is repeated")
        templates[template.template_code] = template
    return tuple(templates.values())


def load_config(path: Path | str) -> SandboxConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SandboxConfigError(f"cannot read sandbox config {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise SandboxConfigError(f"sandbox config {path} is not valid JSON") from None
    return parse_config(data)


def save_config(config: SandboxConfig, path: Path | str) -> None:
    write_private_json(Path(path), config.to_dict())


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON readable by the owner only (it holds private keys), replacing any old file atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.chmod(temporary, 0o600)  # O_CREAT's mode does not apply when the file already existed
    os.replace(temporary, path)


def demo_templates(merchant_account_id: str = DEMO_MERCHANT_ACCOUNT_ID) -> tuple[Template, ...]:
    """One template per status, plus one near the 1,000,000 ceiling."""

    def template(code: str, status: TemplateStatus, budget: int = 1000, issued: int = 100) -> Template:
        return Template(code, merchant_account_id, status, budget, issued)

    return (
        template("DEMO-VALID", TemplateStatus.VALID),
        template("DEMO-FROZEN", TemplateStatus.FROZEN),
        template("DEMO-PAUSED", TemplateStatus.PAUSED),
        template("DEMO-CLOSED", TemplateStatus.CLOSED),
        template("DEMO-EXPIRED", TemplateStatus.EXPIRED),
        template("DEMO-FULL", TemplateStatus.VALID, budget=999_990, issued=0),
    )


def build_config(
    sandbox_key: rsa.RSAPrivateKey,
    client_keys: dict[str, dict[str, rsa.RSAPublicKey]],
    templates: tuple[Template, ...] = (),
) -> SandboxConfig:
    """A config from parsed keys (tests and the demo set-up generate keys rather than read them)."""
    clients = {
        cid: {version: public_key_pem(key) for version, key in keys.items()} for cid, keys in client_keys.items()
    }
    return SandboxConfig(private_key_pem(sandbox_key), clients, templates)


def signing_secret(
    client_id: str, merchant_account_id: str, client_key: rsa.RSAPrivateKey, sandbox_public_key: rsa.RSAPublicKey
) -> dict[str, str]:
    """The contract section 3 secret that lets the service talk to this sandbox as ``client_id``."""
    return {
        "clientId": client_id,
        "merchantAccountId": merchant_account_id,
        "privateKey": private_key_pem(client_key),
        "keyVersion": DEMO_KEY_VERSION,
        "algorithm": RSA256,
        "alipayPublicKey": public_key_pem(sandbox_public_key),
    }


def demo_config(state_dir: Path | str = DEFAULT_STATE_DIR) -> tuple[SandboxConfig, Path]:
    """The demo set-up in ``state_dir``: reused when both files exist, generated otherwise.

    Returns the config and the path of the signing secret for Client-Id SANDBOXCLIENT01. Both files
    are regenerated together because the secret's client key cannot be recovered from the config.
    """
    directory = Path(state_dir)
    config_path, secret_path = directory / CONFIG_FILE_NAME, directory / SECRET_FILE_NAME
    if config_path.is_file() and secret_path.is_file():
        return load_config(config_path), secret_path
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    sandbox_key, client_key = generate_private_key(), generate_private_key()
    config = build_config(sandbox_key, {DEMO_CLIENT_ID: {DEMO_KEY_VERSION: client_key.public_key()}}, demo_templates())
    save_config(config, config_path)
    secret = signing_secret(DEMO_CLIENT_ID, DEMO_MERCHANT_ACCOUNT_ID, client_key, sandbox_key.public_key())
    write_private_json(secret_path, secret)
    return config, secret_path
