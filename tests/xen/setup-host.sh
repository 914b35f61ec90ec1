#!/usr/bin/env bash
# Install the host prerequisites of the Xen lab (idempotent; apt-get update at most once),
# including the build dependencies of xen421's Xen source build when listed.
# Needs root and the Debian archive configured in apt. `make test-xen` (and so CI) runs it.
# The Xen, kernel and busybox packages are not installed here: lab.py fetches them with
# `apt-get download` and unpacks them into its cache.
set -euo pipefail

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
# xenarm (Xen/Arm under TCG): qemu-system-aarch64 with -device guest-loader (QEMU >= 5.2)
command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v cpio >/dev/null || need+=(cpio)
command -v unshare >/dev/null || need+=(util-linux)
command -v gzip >/dev/null || need+=(gzip)
# xen421's Xen source build (xensrc.py): Debian build dependencies, one per line.
deps=$(dirname "$0")/images/xen-src-build-deps.txt
if [ -f "$deps" ]; then
    while read -r p _; do
        case $p in ''|'#'*) continue ;; esac
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
    done <"$deps"
fi

if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-host: missing ${need[*]} and not root to install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "setup-host: ok ($(qemu-system-x86_64 --version | head -1), qemu-system-aarch64 $(qemu-system-aarch64 --version | head -1 | awk '{print $4}'), debootstrap $(dpkg-query -W -f '${Version}' debootstrap))"
