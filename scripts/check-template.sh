#!/usr/bin/env bash
# Offline checks of the SAM application: cfn-lint, `sam validate --lint`, `sam build` (in-process,
# no Docker, no AWS account or credentials) and the layer architecture check.
#
#   scripts/check-template.sh            # from anywhere; works on the repo it lives in
#
# Needs: Python 3.11+ with venv/pip, make, and access to PyPI. aws-sam-cli pins many packages
# (boto3, botocore, cfn-lint, ...), so it gets its own venv, .venv-sam/, never the project .venv.
# The venv is created on first use and reinstalled when the pins below change.
set -euo pipefail

SAM_CLI_VERSION="1.170.0"
CFN_LINT_VERSION="1.58.0"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv-sam"
PYTHON="${PYTHON:-python3}"
PINS="aws-sam-cli==${SAM_CLI_VERSION} cfn-lint==${CFN_LINT_VERSION}"

step() { printf '\n==> %s\n' "$*"; }

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "need Python 3.11+ as \$PYTHON (found: $("$PYTHON" --version 2>&1))" >&2
    exit 2
fi
command -v make >/dev/null || { echo "need make (sam build runs layers/Makefile)" >&2; exit 2; }

if [[ ! -x "$VENV/bin/sam" || "$(cat "$VENV/.pins" 2>/dev/null)" != "$PINS" ]]; then
    step "creating $VENV with $PINS"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    # shellcheck disable=SC2086  # PINS is a list of requirement specifiers
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet $PINS
    echo "$PINS" >"$VENV/.pins"
fi

# The Makefile's `python3` must be one with pip: put the SAM venv first on PATH.
export PATH="$VENV/bin:$PATH"
# Region for the SAM translator; no credentials are read by any step below.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-ap-east-1}"
export AWS_REGION="${AWS_REGION:-$AWS_DEFAULT_REGION}"
export SAM_CLI_TELEMETRY=0

# --include-checks I: the informational rules too (e.g. I3011 explicit deletion policies).
step "cfn-lint $(cfn-lint --version | awk '{print $2}') --include-checks I template.yaml"
cfn-lint --include-checks I -- template.yaml

step "sam validate --lint"
sam validate --lint --template-file template.yaml

step "sam build (samconfig.toml [default.build.parameters])"
sam build --template-file template.yaml

if [[ ! -f .aws-sam/build/UpdateBudgetFunction/app.py ]]; then
    echo "FAIL .aws-sam/build/UpdateBudgetFunction/app.py is missing (functions/update_budget/app.py?)" >&2
    exit 1
fi

step "layer architecture and bytecode"
# Where layers/Makefile finds a CPython 3.13, the layer must carry its bytecode.
LAYER_CHECK_ARGS=()
if [[ -n "$(make --no-print-directory --makefile layers/Makefile print-python313)" ]]; then
    LAYER_CHECK_ARGS+=(--require-bytecode)
fi
python3 scripts/check_layer_arch.py "${LAYER_CHECK_ARGS[@]}" .aws-sam/build/IpassBudgetLayer

step "all template checks passed"
