#!/usr/bin/env bash
# Build a Debian trixie dom0 root for the Xen lab's xen420/xen421 hosts, as a gzip'd
# newc cpio archive.
#   build-dom0-trixie.sh OUT.cpio.gz MIRROR KMODDIR KVER MODE [ARG]
# MIRROR: the Debian archive URI of the host's apt configuration (read by lab.py, never
# hard-coded). KMODDIR: usr/lib/modules/KVER of the unpacked trixie kernel package.
# MODE:
#   debian  ARG = the xen-utils-4.20 version: Debian's Xen 4.20 tools (the same version
#           as the hypervisor lab.py took from trixie).
#   xensrc  ARG = dist-install.tar.gz: no Debian Xen package at all; Xen's own
#           dist/install tree (built from source by xensrc.py) unpacked over the root,
#           plus the run-time libraries its binaries need (every ELF is checked with
#           ldd in the chroot; a missing library fails the build).
# Runs in a private mount namespace with the work tree on tmpfs.
set -euo pipefail
OUT=$1 MIRROR=$2 KMODDIR=$3 KVER=$4 MODE=$5 ARG=${6:-}

if [ "${XCI_IN_NS:-}" != 1 ]; then
    exec unshare --mount --propagation private env XCI_IN_NS=1 "$0" "$@"
fi

W=$(mktemp -d /tmp/xci-dom0t.XXXXXX)
trap 'umount -R "$W" 2>/dev/null || true; rm -rf "$W"' EXIT
mount -t tmpfs -o size=6g,mode=0755 tmpfs "$W"
R=$W/root
mkdir -p "$R"

log() { echo "build-dom0-trixie: $*" >&2; }
t0=$(date +%s)
log "debootstrap minbase trixie ($MODE)"
debootstrap --variant=minbase --include=busybox,kmod,procps,psmisc \
    trixie "$R" "$MIRROR" >"$W/debootstrap.log" 2>&1 || { tail -40 "$W/debootstrap.log" >&2; exit 1; }
log "debootstrap done in $(( $(date +%s) - t0 )) s"

rm -f "$R/etc/apt/sources.list" "$R"/etc/apt/sources.list.d/*
echo "deb $MIRROR trixie main" >"$R/etc/apt/sources.list"
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
common=(jq python3 python3-cffi python3-pip tmux iproute2)
# Run-time libraries of Xen's tools built from source (what Debian's xen-utils and
# libxen* packages would bring): checked below with ldd, binary by binary.
srclibs=(libyajl2 libnl-3-200 libnl-route-3-200 libaio1t64 liblzma5 libzstd1 libbz2-1.0
         liblz4-1 liblzo2-2 zlib1g libncurses6 libtinfo6 libuuid1 libfdt1 udev)
case $MODE in
    debian) pkgs=("xen-utils-4.20=$ARG" xenstore-utils "${common[@]}") ;;
    xensrc) pkgs=("${srclibs[@]}" "${common[@]}") ;;
    *) log "unknown mode $MODE"; exit 2 ;;
esac
log "apt-get install ${pkgs[*]}"
# shellcheck disable=SC2046
chroot "$R" apt-get -q -y --no-install-recommends install "${pkgs[@]}" \
    >>"$W/apt.log" 2>&1 || { tail -60 "$W/apt.log" >&2; exit 1; }
chroot "$R" apt-get clean
log "packages done in $(( $(date +%s) - t0 )) s"

if [ "$MODE" = xensrc ]; then
    if chroot "$R" dpkg-query -W -f '${Package}\n' | grep -E '^(xen-|libxen)'; then
        log "a Debian Xen package is in the root"; exit 1
    fi
    tar -xzf "$ARG" -C "$R" --no-same-owner --keep-directory-symlink
    # Xen installs under /usr/lib (and maybe /usr/lib64, /usr/local): make ld.so see it.
    for d in /usr/lib /usr/lib64 /usr/local/lib; do echo "$d"; done >"$R/etc/ld.so.conf.d/xen-src.conf"
    chroot "$R" ldconfig
    : >"$W/ldd.txt"
    while IFS= read -r -d '' f; do
        head -c 4 "$f" 2>/dev/null | grep -q 'ELF' || continue
        chroot "$R" ldd "${f#"$R"}" 2>/dev/null | sed "s|^|${f#"$R"}: |" >>"$W/ldd.txt" || true
    done < <(tar -tzf "$ARG" | sed -e 's|^\./||' -e '/\/$/d' -e "s|^|$R/|" |
             while IFS= read -r f; do [ -f "$f" ] && [ ! -L "$f" ] && printf '%s\0' "$f"; done)
    if grep 'not found' "$W/ldd.txt" >&2; then
        log "run-time libraries missing for Xen's tools (above)"; exit 1
    fi
    log "ldd: $(cut -d: -f1 "$W/ldd.txt" | sort -u | wc -l) ELF files of the Xen install resolve every library"
    for t in xl xenstored xenconsoled xenstore-read; do
        chroot "$R" sh -c "command -v $t" >/dev/null || { log "$t missing from the Xen install"; exit 1; }
    done
    [ -x "$R/usr/lib/xen/bin/xen-init-dom0" ] || { log "/usr/lib/xen/bin/xen-init-dom0 missing"; exit 1; }
    # No Debian init script here: the lab's run-lab.sh starts the daemons by hand.
    echo 'XENCONSOLED_ARGS="--log=guest"' >"$R/etc/default/xen"
fi
chroot "$R" dpkg-query -W -f '${Package} ${Version}\n' >"$OUT.packages"
chroot "$R" python3 -c 'import cffi, sys; print("python", sys.version.split()[0], "cffi", cffi.__version__)' >&2

# Kernel modules dom0 needs (not built into the Debian kernel), then depmod.
M=$R/usr/lib/modules/$KVER
mkdir -p "$M/kernel/drivers"
cp -a "$KMODDIR/kernel/drivers/xen" "$M/kernel/drivers/"
cp -a "$KMODDIR"/modules.order "$KMODDIR"/modules.builtin* "$M/" 2>/dev/null || true
chroot "$R" depmod "$KVER"

chroot "$R" useradd -M -d /tmp -s /bin/bash xciuser
echo xcidom0 >"$R/etc/hostname"

umount -R "$R/dev" "$R/proc" "$R/sys"
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/*.bin "$R"/var/cache/debconf/*-old \
       "$R"/usr/share/doc "$R"/usr/share/man "$R"/usr/share/info "$R"/var/log/*.log \
       "$R"/usr/include "$R"/usr/share/xen/*.h 2>/dev/null || true
find "$R/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
find "$R" -xdev -name '*.a' -path '*/usr/lib/*' -delete 2>/dev/null || true
rm -f "$R/etc/dpkg/dpkg.cfg.d/xci-unsafe-io"

log "packing"
(cd "$R" && find . -xdev -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
log "done in $(( $(date +%s) - t0 )) s, $(du -h "$OUT" | cut -f1)"
