#!/usr/bin/env python3
"""Check a built IpassBudgetLayer before it is deployed (stdlib only, any Python 3.11+).

    python3 scripts/check_layer_arch.py [LAYER_DIR]     # default .aws-sam/build/IpassBudgetLayer

A layer built on an x86_64 laptop for an arm64 function imports fine in tests and then fails in
Lambda with "invalid ELF header" (pyca/cryptography #6372, #9851). This reads the ELF headers
itself (no `file` needed) and asserts that:

* cryptography's Rust extension `_rust.abi3.so` exists and is an aarch64 (e_machine 0xB7),
  64-bit little-endian ELF; so is every other shared object in the layer;
* version-specific extension modules are built for CPython 3.13 (`cpython-313-aarch64`);
* the packages the function imports are present, `ipass_budget` without tests;
* bytecode, if any (layers/Makefile compiles it when a CPython 3.13 is at hand), is CPython 3.13's
  own, in `__pycache__`, and unchecked-hash-based, so Python never compares it with the sources;
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
# importlib.util.MAGIC_NUMBER of every CPython 3.13 release (PEP 552 header: magic, then flags).
PYC_MAGIC_313 = (3571).to_bytes(2, "little") + b"\r\n"
PYC_SUFFIX = ".cpython-313.pyc"
PYC_UNCHECKED_HASH = 0b01  # flags: hash-based, check_source off


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


def bytecode_problems(site: Path, bytecode: list[Path]) -> list[str]:
    """Every .pyc must be CPython 3.13's, in __pycache__, unchecked-hash-based, next to its source."""
    problems = []
    for pyc in bytecode:
        shown = pyc.relative_to(site)
        if pyc.parent.name != "__pycache__" or not pyc.name.endswith(PYC_SUFFIX):
            problems.append(f"{shown}: not CPython 3.13 bytecode in __pycache__ (useless to python3.13)")
            continue
        header = pyc.read_bytes()[:8]
        if header[:4] != PYC_MAGIC_313:
            problems.append(f"{shown}: magic number {header[:4]!r} is not CPython 3.13's")
        elif int.from_bytes(header[4:8], "little") != PYC_UNCHECKED_HASH:
            problems.append(f"{shown}: not unchecked-hash-based bytecode (compileall --invalidation-mode)")
        source = pyc.parent.parent / (pyc.name.removesuffix(PYC_SUFFIX) + ".py")
        if not source.is_file():
            problems.append(f"{shown}: no source {source.relative_to(site)} beside it")
    return problems


def check(layer_dir: Path, *, require_bytecode: bool = False) -> list[str]:
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
        leftovers = [p for p in domain.rglob("*") if p.name in {"tests", "conftest.py"}]
        leftovers += list(domain.rglob("test_*.py"))
        problems.extend(f"{p.relative_to(site)} should not ship in the layer" for p in sorted(set(leftovers)))
    bytecode = sorted(site.rglob("*.py[co]"))
    problems.extend(bytecode_problems(site, bytecode))
    if require_bytecode and not bytecode:
        problems.append("no bytecode, although a CPython 3.13 was at hand to compile it (layers/Makefile)")

    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())
    compiled = f"{len(bytecode)} modules compiled for CPython 3.13" if bytecode else "no bytecode"
    print(f"layer {layer_dir}: {size / 1024 / 1024:.1f} MiB unzipped, {len(shared_objects)} shared objects, {compiled}")
    if size > LAMBDA_UNZIPPED_LIMIT:
        problems.append(f"layer is {size} bytes unzipped, over Lambda's 250 MB limit")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("layer_dir", nargs="?", type=Path, default=DEFAULT_LAYER_DIR)
    parser.add_argument("--require-bytecode", action="store_true", help="fail if the layer ships no bytecode")
    args = parser.parse_args(argv)
    problems = check(args.layer_dir, require_bytecode=args.require_bytecode)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"ok: {RUST_EXTENSION} and every shared object are aarch64 ELF for CPython 3.13")
    return 0


if __name__ == "__main__":
    sys.exit(main())
