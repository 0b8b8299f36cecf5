#!/usr/bin/env bash
# Create ./.venv and install heygemd into it. Safe to run again: it only installs what is missing.
#
# torch is installed first and on its own, pinned: an unpinned torch pulled in by another
# package would fetch the newest build with several GB of CUDA libraries.
#   HEYGEMD_TORCH       the pip requirement for torch (default: torch==2.13.0)
#   PYTHON              the interpreter to build the venv from (default: python3, needs >= 3.11)
#
# `setup.sh test` also installs the test tools. The Samba tests need smbd (Debian package samba), the web
# page's browser tests need Chromium (Debian package chromium; Playwright drives it, its own browser
# download is never used), the cluster tests need redis-server (Debian package redis-server): run as root, they are installed with apt-get when missing; otherwise those
# tests skip, naming the package (under CI=true they fail instead).
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

# install_for_tests COMMAND "WHICH TESTS" PACKAGE...: the Debian packages a group of tests needs, when COMMAND is
# missing and we are root with apt-get; otherwise say which tests will skip (under CI=true they fail instead).
install_for_tests() {
    local command=$1 tests=$2
    shift 2
    if command -v "$command" >/dev/null 2>&1 || [[ -x /usr/sbin/$command ]]; then
        return
    fi
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "$command is not installed and cannot be installed here (needs root and apt-get):" \
             "the $tests tests will skip; install the Debian package $1 to run them" >&2
        return
    fi
    echo "installing $* for the $tests tests: apt-get install -y --no-install-recommends $*"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
    echo "installing $TORCH_REQUIREMENT"
    pip install -q "$TORCH_REQUIREMENT"
fi
if [[ $EXTRAS == *test* ]]; then
    install_for_tests smbd Samba samba
    # a small CJK font, so that the screenshots of the Chinese pages show the characters
    install_for_tests chromium browser chromium fonts-wqy-microhei
    install_for_tests redis-server cluster redis-server
    # The tests start their own smbd and redis-server on 127.0.0.1. Debian may also have enabled its own
    # services: systemctl disable --now smbd nmbd redis-server if this machine should not serve them.
fi
echo "installing heygemd${EXTRAS:+ with [$EXTRAS]}"
pip install -q -e ".${EXTRAS:+[$EXTRAS]}"
