#!/usr/bin/env bash
# Install everything the fast test suite needs, on a fresh Debian machine (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
# One at a time: .ci/run starts the slow suite beside the fast one, and each make target
# runs this first (apt and pip do not share their locks and caches gracefully).
exec 9>"${TMPDIR:-/tmp}/xcinspect-setup-test.lock"
flock 9

need_apt=()
command -v tmux >/dev/null || need_apt+=(tmux)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v rsvg-convert >/dev/null || need_apt+=(librsvg2-bin)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    else
        echo "setup-test: missing ${need_apt[*]} and not root to install them" >&2
        exit 1
    fi
fi
python3 -m pip install -q -e '.[test]' 2>&1 | grep -v "Running pip as the 'root' user" || true
python3 -c "import xcinspect, textual, pyxs, hypothesis, syrupy, ruff, mypy" 
