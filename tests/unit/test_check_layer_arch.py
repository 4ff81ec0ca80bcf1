"""scripts/check_layer_arch.py: only CPython 3.13's unchecked-hash bytecode may ship in the layer."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def checker() -> ModuleType:
    return load_script("check_layer_arch")


def pyc_313(path: Path, flags: int = 0b01) -> Path:
    """A CPython 3.13 header (magic, PEP 552 flags, source hash) and no code: all the check reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((3571).to_bytes(2, "little") + b"\r\n" + flags.to_bytes(4, "little") + bytes(8))
    return path


def module_source(site: Path, name: str = "pkg/mod.py") -> Path:
    source = site / name
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("VALUE = 1\n", encoding="utf-8")
    return source


def test_cpython_313_unchecked_hash_bytecode_passes(checker: ModuleType, tmp_path: Path) -> None:
    module_source(tmp_path)
    pyc = pyc_313(tmp_path / "pkg" / "__pycache__" / "mod.cpython-313.pyc")
    assert checker.bytecode_problems(tmp_path, [pyc]) == []


def test_bytecode_of_another_python_is_refused(checker: ModuleType, tmp_path: Path) -> None:
    module_source(tmp_path)
    cpython_311 = tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc"
    disguised = tmp_path / "pkg" / "__pycache__" / "mod.cpython-313.pyc"
    for pyc in (cpython_311, disguised):
        pyc_313(pyc)
        pyc.write_bytes((3495).to_bytes(2, "little") + pyc.read_bytes()[2:])  # CPython 3.11's magic

    problems = checker.bytecode_problems(tmp_path, [cpython_311, disguised])

    assert problems == [
        "pkg/__pycache__/mod.cpython-311.pyc: not CPython 3.13 bytecode in __pycache__ (useless to python3.13)",
        "pkg/__pycache__/mod.cpython-313.pyc: magic number b'\\xa7\\r\\r\\n' is not CPython 3.13's",
    ]


def test_timestamp_or_checked_bytecode_is_refused(checker: ModuleType, tmp_path: Path) -> None:
    module_source(tmp_path)
    for flags in (0b00, 0b11):  # timestamp-based; hash-based but checked against the source
        pyc = pyc_313(tmp_path / "pkg" / "__pycache__" / "mod.cpython-313.pyc", flags)
        (problem,) = checker.bytecode_problems(tmp_path, [pyc])
        assert "not unchecked-hash-based" in problem


def test_bytecode_without_its_source_is_refused(checker: ModuleType, tmp_path: Path) -> None:
    pyc = pyc_313(tmp_path / "pkg" / "__pycache__" / "gone.cpython-313.pyc")
    (problem,) = checker.bytecode_problems(tmp_path, [pyc])
    assert "no source pkg/gone.py" in problem
