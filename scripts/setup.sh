#!/usr/bin/env bash
# Create the virtualenv and install agentspace (editable) with its test tools.
# Needs: python3 (3.10+) with venv, access to PyPI, bubblewrap for the sandbox and chromium for
# the browser tests (installed here with apt-get when run as root; otherwise it says what to
# install).
set -euo pipefail
VENV="${1:-.venv}"
cd "$(dirname "$0")/.."
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "agentspace needs Python 3.10 or newer (found $(python3 --version))." >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || {
        echo "python3 -m venv failed: install the venv module (Debian: apt-get install python3-venv)." >&2
        exit 1
    }
fi
# apt_install PACKAGE: as root with apt-get; `apt-get update` only when the install fails
# (a fresh image has no package lists; a warm one needs no network round trip).
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null ||
        { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null; }
}
can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }
if ! command -v bwrap >/dev/null 2>&1; then
    if can_apt; then
        echo "installing bubblewrap (the default sandbox)..." >&2
        apt_install bubblewrap
    else
        echo "bubblewrap is missing: install it (Debian/Ubuntu: sudo apt-get install bubblewrap)," >&2
        echo "or run agentspace with sandbox='docker' or sandbox='local'." >&2
    fi
fi
# Workspace quotas as filesystems (root only): mkfs.ext4, e2fsck, resize2fs. Part of a standard
# Debian install; a slim image may lack them (then commands are not held to the quota).
if [ "$(id -u)" = 0 ] && ! command -v mkfs.ext4 >/dev/null 2>&1 && ! [ -x /sbin/mkfs.ext4 ]; then
    if can_apt; then
        echo "installing e2fsprogs (workspace quota filesystems)..." >&2
        apt_install e2fsprogs
    fi
fi
# The browser tests (tests/browser) drive Debian's chromium through Playwright; Playwright's own
# browser download (`playwright install`) is never used.
if [ ! -x /usr/bin/chromium ]; then
    if can_apt; then
        echo "installing chromium (the browser tests)..." >&2
        apt_install chromium
    else
        echo "chromium is missing: the browser tests need /usr/bin/chromium" >&2
        echo "(Debian: sudo apt-get install chromium)." >&2
    fi
fi
# Versions come from constraints.txt (updated on purpose with scripts/constraints.sh), so a new
# release of a dependency cannot break a fresh install; pyproject.toml keeps the ranges that
# `pip install jupyter-agentspace` accepts.
"$VENV/bin/python" -m pip install --quiet -c constraints.txt pip
"$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[test]"
# The labextension (live notebook link, "Fix with agent"), built from labextension/ with the
# machine's node and linked into the venv; skipped with a message when node/npm are missing.
scripts/labextension.sh "$VENV"
# jupyter-collaboration, for the browser test that edits a notebook in its real-time mode: in a
# folder of its own, never on the venv's path (it would switch every server into that mode and
# is not a dependency of agentspace: docs/notebook-link.md).
COLLAB="$VENV/opt/jupyter-collaboration"
if [ ! -f "$COLLAB/.installed" ]; then
    "$VENV/bin/python" -m pip install --quiet --no-deps --target "$COLLAB" \
        jupyter-collaboration==5.0.4 jupyter-collaboration-ui==3.0.4 jupyter-docprovider==3.0.4 \
        jupyter-server-ydoc==3.0.4 jupyter-server-fileid==0.10.0 jupyter-ydoc==4.2.1 \
        pycrdt==0.14.13 pycrdt-websocket==0.16.5 pycrdt-store==0.1.5 sqlite-anyio==0.2.10
    touch "$COLLAB/.installed"
fi
