#!/usr/bin/env bash
# Create ./.venv and install heygemd into it. Safe to run again: it only installs what is missing.
#
# torch is installed first and on its own, pinned: an unpinned torch pulled in by another
# package would fetch the newest build with several GB of CUDA libraries.
#   HEYGEMD_TORCH       the pip requirement for torch (default: torch==2.13.0)
#   PYTHON              the interpreter to build the venv from (default: python3, needs >= 3.11)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_REQUIREMENT=${HEYGEMD_TORCH:-torch==2.13.0}
EXTRAS=${1:-}

if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "heygemd needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
        exit 1
    }
    "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check "$@"; }

if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
    echo "installing $TORCH_REQUIREMENT"
    pip install -q "$TORCH_REQUIREMENT"
fi
echo "installing heygemd${EXTRAS:+ with [$EXTRAS]}"
pip install -q -e ".${EXTRAS:+[$EXTRAS]}"
