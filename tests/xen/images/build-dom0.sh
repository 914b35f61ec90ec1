#!/usr/bin/env bash
# Build the dom0 root of the Xen lab as a gzip'd newc cpio archive.
#   build-dom0.sh OUT.cpio.gz MIRROR KMODDIR KVER SOURCESDIR
# MIRROR: the Debian archive URI the host's apt uses (read from its configuration by
# lab.py; never hard-coded). KMODDIR: lib/modules/KVER of the unpacked kernel package.
# SOURCESDIR: copies of the host's apt source files, so the chroot's apt uses the same
# mirror and suites (the hypervisor comes from the host's apt, the tools from the
# chroot's: their versions must match).
# Runs in a private mount namespace with the work tree on tmpfs: no fsync cost, and
# nothing stays mounted if it dies.
set -euo pipefail
OUT=$1 MIRROR=$2 KMODDIR=$3 KVER=$4 SOURCESDIR=$5

if [ "${XCI_IN_NS:-}" != 1 ]; then
    exec unshare --mount --propagation private env XCI_IN_NS=1 "$0" "$@"
fi

W=$(mktemp -d /tmp/xci-dom0.XXXXXX)
trap 'umount -R "$W" 2>/dev/null || true; rm -rf "$W"' EXIT
mount -t tmpfs -o size=6g,mode=0755 tmpfs "$W"
R=$W/root
mkdir -p "$R"

log() { echo "build-dom0: $*" >&2; }
t0=$(date +%s)
log "debootstrap minbase bookworm"
debootstrap --variant=minbase --include=busybox,kmod,procps,psmisc \
    bookworm "$R" "$MIRROR" >"$W/debootstrap.log" 2>&1 || { tail -40 "$W/debootstrap.log" >&2; exit 1; }
log "debootstrap done in $(( $(date +%s) - t0 )) s"

# apt in the chroot: same mirror(s) as the host.
rm -f "$R/etc/apt/sources.list"
mkdir -p "$R/etc/apt/sources.list.d"
for f in "$SOURCESDIR"/*; do [ -e "$f" ] && cp "$f" "$R/etc/apt/sources.list.d/"; done
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"
echo 'force-unsafe-io' >"$R/etc/dpkg/dpkg.cfg.d/xci-unsafe-io"
cat >"$R/etc/dpkg/dpkg.cfg.d/xci-nodoc" <<'EOT'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOT

mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount -t sysfs sys "$R/sys"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
chroot "$R" apt-get -q update >"$W/apt.log" 2>&1 || { tail -40 "$W/apt.log" >&2; exit 1; }
log "apt-get install"
chroot "$R" apt-get -q -y --no-install-recommends install \
    xen-utils-4.17 xenstore-utils jq python3 python3-cffi python3-pyxs python3-pip tmux \
    >>"$W/apt.log" 2>&1 || { tail -60 "$W/apt.log" >&2; exit 1; }
chroot "$R" apt-get clean
log "packages done in $(( $(date +%s) - t0 )) s"
chroot "$R" dpkg-query -W -f '${Package} ${Version}\n' >"$OUT.packages"

# Kernel modules dom0 needs (not built into the Debian kernel), then depmod.
mkdir -p "$R/lib/modules/$KVER/kernel/drivers"
cp -a "$KMODDIR/kernel/drivers/xen" "$R/lib/modules/$KVER/kernel/drivers/"
cp -a "$KMODDIR"/modules.order "$KMODDIR"/modules.builtin* "$R/lib/modules/$KVER/" 2>/dev/null || true
chroot "$R" depmod "$KVER"

# An unprivileged user for the bad-environment scenario.
chroot "$R" useradd -M -d /tmp -s /bin/bash xciuser
echo xcidom0 >"$R/etc/hostname"

umount -R "$R/dev" "$R/proc" "$R/sys"
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/cache/debconf/*-old \
       "$R"/usr/share/doc "$R"/usr/share/man "$R"/usr/share/info "$R"/var/log/*.log
find "$R/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
rm -f "$R/etc/dpkg/dpkg.cfg.d/xci-unsafe-io"

log "packing"
(cd "$R" && find . -xdev -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
log "done in $(( $(date +%s) - t0 )) s, $(du -h "$OUT" | cut -f1)"
