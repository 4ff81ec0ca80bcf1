#!/usr/bin/env python3
"""Check a built IpassBudgetLayer before it is deployed (stdlib only, any Python 3.11+).

    python3 scripts/check_layer_arch.py [LAYER_DIR]     # default .aws-sam/build/IpassBudgetLayer

A layer built on an x86_64 laptop for an arm64 function imports fine in tests and then fails in
Lambda with "invalid ELF header" (pyca/cryptography #6372, #9851). This reads the ELF headers
itself (no `file` needed) and asserts that:

* cryptography's Rust extension `_rust.abi3.so` exists and is an aarch64 (e_machine 0xB7),
  64-bit little-endian ELF; so is every other shared object in the layer;
* version-specific extension modules are built for CPython 3.13 (`cpython-313-aarch64`);
* the packages the function imports are present, `ipass_budget` without tests or caches;
* the layer fits Lambda's 250 MB unzipped limit (it prints its size).
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

EM_AARCH64 = 0xB7
ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
RUST_EXTENSION = Path("cryptography/hazmat/bindings/_rust.abi3.so")
REQUIRED_PACKAGES = (
    "ipass_budget",
    "aws_lambda_powertools",
    "aws_xray_sdk",
    "cryptography",
    "requests",
    "boto3",
    "botocore",
)
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
DEFAULT_LAYER_DIR = Path(".aws-sam/build/IpassBudgetLayer")


def elf_machine(path: Path) -> str | int:
    """Return the ELF e_machine of `path`, or a string saying why it is not a usable ELF."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != ELF_MAGIC:
        return "not an ELF file"
    if header[4] != ELFCLASS64:
        return f"ELF class {header[4]} (want 2, 64-bit)"
    if header[5] != ELFDATA2LSB:
        return f"ELF data encoding {header[5]} (want 1, little-endian)"
    (machine,) = struct.unpack_from("<H", header, 18)
    return int(machine)


def check(layer_dir: Path) -> list[str]:
    """Return the problems found in the built layer directory (empty when it is fine)."""
    site = layer_dir / "python"
    if not site.is_dir():
        return [f"{site} does not exist: run `sam build` first"]
    problems: list[str] = []

    rust = site / RUST_EXTENSION
    if not rust.is_file():
        problems.append(f"missing {rust}")

    shared_objects = sorted(site.rglob("*.so")) + sorted(site.rglob("*.so.*"))
    for so in shared_objects:
        machine = elf_machine(so)
        if machine != EM_AARCH64:
            shown = machine if isinstance(machine, str) else f"e_machine 0x{machine:X}"
            problems.append(f"{so.relative_to(site)}: {shown}, want aarch64 (0xB7)")
        if ".cpython-" in so.name and ".cpython-313-aarch64-linux-gnu." not in so.name:
            problems.append(f"{so.relative_to(site)}: not a CPython 3.13 aarch64 extension")

    for package in REQUIRED_PACKAGES:
        if not (site / package).is_dir():
            problems.append(f"missing package {package}/")
    domain = site / "ipass_budget"
    if domain.is_dir():
        leftovers = [p for p in domain.rglob("*") if p.name in {"__pycache__", "tests", "conftest.py"}]
        leftovers += list(domain.rglob("test_*.py"))
        problems.extend(f"{p.relative_to(site)} should not ship in the layer" for p in sorted(set(leftovers)))

    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())
    print(f"layer {layer_dir}: {size / 1024 / 1024:.1f} MiB unzipped, {len(shared_objects)} shared objects")
    if size > LAMBDA_UNZIPPED_LIMIT:
        problems.append(f"layer is {size} bytes unzipped, over Lambda's 250 MB limit")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("layer_dir", nargs="?", type=Path, default=DEFAULT_LAYER_DIR)
    args = parser.parse_args(argv)
    problems = check(args.layer_dir)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"ok: {RUST_EXTENSION} and every shared object are aarch64 ELF for CPython 3.13")
    return 0


if __name__ == "__main__":
    sys.exit(main())
