#!/usr/bin/env bash
# Install the host prerequisites of the Xen lab (idempotent). Needs root and the
# Debian package archive configured in apt. CI calls this from `make test-xen`.
set -euo pipefail

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v cpio >/dev/null || need+=(cpio)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx setsid || need+=(busybox-static)
command -v zstd >/dev/null || need+=(zstd)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v gzip >/dev/null || need+=(gzip)

if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-host: missing ${need[*]} and not root to install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # qemu-system-x86 without recommends: no GUI, firmware comes as a dependency.
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v qemu-system-x86_64 >/dev/null
command -v debootstrap >/dev/null
echo "setup-host: ok ($(qemu-system-x86_64 --version | head -1))"
