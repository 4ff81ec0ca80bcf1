"""What the layer's bytecode saves a Lambda cold start, measured with CPython 3.13, the function's runtime.

Lambda cannot write ``__pycache__`` to ``/opt``, so a layer without bytecode has every module the
handler imports compiled at every cold start. layers/Makefile compiles the layer when a CPython
3.13 is at hand; this measures, side by side in one run, the handler's import from the same layer
contents with and without that bytecode:

* the layer's pinned distributions (layers/requirements.txt) installed for this host with CPython
  3.13 (the deployed layer's aarch64 wheels cannot load here; the Python code is the same), plus
  ``ipass_budget``;
* "no bytecode": nothing compiled, and nothing written while importing (``-B``), as in Lambda;
* "bytecode": compiled as layers/Makefile does (``compileall --invalidation-mode unchecked-hash``);
* each sample a fresh interpreter importing ``functions/update_budget/app.py`` with the deployed
  Powertools settings and ``LAMBDA_TASK_ROOT`` set (Tracer active); samples interleaved.

    .venv/bin/python benchmarks/layer_bytecode_bench.py [--quick] [--python PATH_TO_PYTHON3.13]

Prints a table; never fails on timings. Without a CPython 3.13 it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "layers" / "requirements.txt"
LAYER_MAKEFILE = REPO / "layers" / "Makefile"
DOMAIN = REPO / "layers" / "ipass_budget"
FUNCTION = REPO / "functions" / "update_budget"

# Run in the fresh interpreter: time the handler module's import, print seconds as JSON.
IMPORT_APP = "import time; t = time.perf_counter(); import app; print(time.perf_counter() - t)"


def find_python313(explicit: str | None) -> str | None:
    """``--python``, checked to be a CPython 3.13; else the one layers/Makefile compiles the layer with."""
    if explicit is None:
        make = shutil.which("make")
        if make is None:
            raise SystemExit("need make (layers/Makefile says which CPython 3.13 it compiles with)")
        found = subprocess.run(
            [make, "--no-print-directory", "--makefile", str(LAYER_MAKEFILE), "print-python313"],
            capture_output=True,
            text=True,
            check=True,
        )
        return found.stdout.strip() or None
    version = subprocess.run(
        [explicit, "-c", "import sys; print(sys.version_info[:2] == (3, 13))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if version.stdout.strip() != "True":
        raise SystemExit(f"--python {explicit} is not a CPython 3.13")
    return explicit


def build_layer(python: str, target: Path) -> None:
    pip_install = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    pip = subprocess.run(
        [*pip_install, "--only-binary=:all:", "--target", str(target), "--requirement", str(REQUIREMENTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    if pip.returncode != 0:
        raise SystemExit(f"pip could not install the layer's requirements for {python}:\n{pip.stderr[-3000:]}")
    shutil.copytree(DOMAIN, target / "ipass_budget", ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))


def compile_layer(python: str, target: Path) -> None:
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(target)],
        check=True,
    )


def import_seconds(python: str, layer: Path) -> float:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": f"{FUNCTION}:{layer}",
        "LAMBDA_TASK_ROOT": str(FUNCTION),
        "AWS_LAMBDA_FUNCTION_NAME": "UpdateBudgetFunction",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "POWERTOOLS_SERVICE_NAME": "ipass-budget",
        "POWERTOOLS_METRICS_NAMESPACE": "IpassBudget",
    }
    answer = subprocess.run(
        [python, "-B", "-c", IMPORT_APP], env=env, cwd=layer, capture_output=True, text=True, timeout=60, check=True
    )
    return float(json.loads(answer.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few samples (CI smoke run)")
    parser.add_argument("--python", help="a CPython 3.13 (default: the one layers/Makefile finds)")
    args = parser.parse_args(argv)
    python = find_python313(args.python)
    if python is None:
        print("no CPython 3.13 found: nothing measured (layers/Makefile then ships the layer without bytecode)")
        return 0
    samples = 3 if args.quick else 15
    with tempfile.TemporaryDirectory() as scratch:
        plain, compiled = Path(scratch, "plain"), Path(scratch, "compiled")
        build_layer(python, plain)
        shutil.copytree(plain, compiled)
        compile_layer(python, compiled)
        times: dict[str, list[float]] = {"no bytecode": [], "bytecode": []}
        for layer in (plain, compiled):  # warm the page cache for both
            import_seconds(python, layer)
        for i in range(samples):
            order = [("no bytecode", plain), ("bytecode", compiled)]
            for name, layer in order if i % 2 == 0 else order[::-1]:
                times[name].append(import_seconds(python, layer))
    plain_s, compiled_s = (statistics.median(times[name]) for name in ("no bytecode", "bytecode"))
    print(f"handler import with CPython 3.13 ({python}), median of {samples} fresh interpreters:")
    for name, seconds in (("without bytecode (as Lambda runs it without)", plain_s), ("with bytecode", compiled_s)):
        print(f"  layer {name:46s} {seconds * 1000:8.1f} ms  ({seconds / plain_s:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
