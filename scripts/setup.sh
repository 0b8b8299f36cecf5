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

install_samba() {
    if command -v smbd >/dev/null 2>&1 || [[ -x /usr/sbin/smbd ]]; then
        return
    fi
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "smbd is not installed and cannot be installed here (needs root and apt-get):" \
             "the Samba tests will skip; install the Debian package samba to run them" >&2
        return
    fi
    echo "installing smbd for the tests: apt-get update; apt-get install -y --no-install-recommends samba"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends samba
    echo "note: the tests run their own smbd on 127.0.0.1; Debian may also have enabled its samba service:" \
         "systemctl disable --now smbd nmbd if this machine should not serve SMB"
}

install_chromium() {
    if command -v chromium >/dev/null 2>&1; then
        return
    fi
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "chromium is not installed and cannot be installed here (needs root and apt-get):" \
             "the browser tests will skip; install the Debian package chromium to run them" >&2
        return
    fi
    # a small CJK font, so that the screenshots of the Chinese pages show the characters
    echo "installing Chromium for the browser tests: apt-get install -y --no-install-recommends chromium fonts-wqy-microhei"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-wqy-microhei
}

install_redis() {
    if command -v redis-server >/dev/null 2>&1; then
        return
    fi
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "redis-server is not installed and cannot be installed here (needs root and apt-get):" \
             "the cluster tests will skip; install the Debian package redis-server to run them" >&2
        return
    fi
    echo "installing redis-server for the cluster tests: apt-get install -y --no-install-recommends redis-server"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server
    echo "note: the tests run their own redis-server on 127.0.0.1; Debian may also have enabled its service:" \
         "systemctl disable --now redis-server if this machine should not run one"
}

if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
    echo "installing $TORCH_REQUIREMENT"
    pip install -q "$TORCH_REQUIREMENT"
fi
if [[ $EXTRAS == *test* ]]; then
    install_samba
    install_chromium
    install_redis
fi
echo "installing heygemd${EXTRAS:+ with [$EXTRAS]}"
pip install -q -e ".${EXTRAS:+[$EXTRAS]}"
