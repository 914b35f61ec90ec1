#!/usr/bin/env bash
# Build a Xen host whose toolstack writes the Xen >= 4.21 console connection flag, from
# Debian's own xen source package (fetched with apt) plus the lab's own small patches
# (images/xen-flag-patches/*.patch: the flag in io/console.h, libxenguest marks a new
# console page disconnected, xenconsoled marks it connected).
#
#   build-xen-src.sh OUTDIR            build; OUTDIR gets the files below
#   build-xen-src.sh --index APTDIR    refresh a private apt index of xen source packages
#                                      in APTDIR and print "SUITE VERSION" lines
#
# OUTDIR: xen.elf (32-bit multiboot ELF for QEMU -kernel), dist-install.tar.gz (the tools'
# dist/install tree without boot/ and var/run, to extract over a dom0 root whose Debian
# xen packages are purged: tar -C ROOT -xzf dist-install.tar.gz),
# version (what the hypervisor reports), source (suite, package version, orig tarball
# sha256), timings; build.log (the tail) on failure.
#
# Environment: XENSRC_APT_DIR  a private apt directory made by --index (else one is made
#              in the work dir); XENSRC_SUITES  the suites to try, in order of preference
#              (default: trixie-security trixie sid experimental bookworm-security bookworm;
#              a source >= 4.21 is taken first wherever it is); XENSRC_JOBS (default 2).
# The host's apt configuration is only read (for the mirror URIs), never changed: the
# private index uses its own sources list and lists directory. The build itself runs with
# no network (unshare --net): it must download nothing. Needs root (mount namespace,
# tmpfs work dir) and the packages in images/xen-src-build-deps.txt.
#
# Sources below 4.21 get the patches and a hypervisor that reports 4.21-flagport (only
# xen/ gets XEN_SUBVERSION=21; the tools keep their own version and sonames). A 4.21+
# source already has the flag: it is built as it is.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PATCHDIR=$HERE/xen-flag-patches
JOBS=${XENSRC_JOBS:-2}
FLAG_SUBVERSION=21
FLAG_EXTRAVERSION=-flagport
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
DEFAULT_SUITES="trixie-security trixie sid experimental bookworm-security bookworm"

log() { echo "build-xen-src: $*" >&2; }
die() { log "$*"; exit 1; }

# The host's Debian archive URIs, as apt itself sees its configuration.
host_mirrors() {
    apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null | sort -u
}

# apt options for a private index in $1.
apt_opts() {
    local d=$1
    echo "-o Dir::Etc::SourceList=$d/sources.list -o Dir::Etc::SourceParts=/dev/null" \
         "-o Dir::State::Lists=$d/lists -o Dir::Cache=$d/cache -o Dir::Etc::Preferences=/dev/null" \
         "-o Dir::Etc::PreferencesParts=/dev/null -o APT::Sandbox::User=root" \
         "-o Debug::NoLocking=1"
}

make_index() {
    local d=$1 main sec
    main=$(host_mirrors | awk '$2 !~ /-/ {print $1; exit}')
    sec=$(host_mirrors | awk '$2 ~ /-security$/ {print $1; exit}')
    [ -n "$main" ] || die "no Debian mirror in the host's apt configuration"
    mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
    {
        for s in trixie sid experimental bookworm; do
            echo "deb-src [signed-by=$KEYRING] $main $s main"
        done
        if [ -n "$sec" ]; then
            for s in trixie-security bookworm-security; do
                echo "deb-src [signed-by=$KEYRING] $sec $s main"
            done
        fi
    } >"$d/sources.list"
    # shellcheck disable=SC2046
    apt-get $(apt_opts "$d") -q update >"$d/update.log" 2>&1 \
        || { tail -20 "$d/update.log" >&2; die "apt-get update (private index) failed"; }
}

# "SUITE VERSION" for every xen source package in the private index $1.
index_versions() {
    # shellcheck disable=SC2046
    apt-cache $(apt_opts "$1") madison xen 2>/dev/null \
        | awk -F'|' '$3 ~ /Sources/ {gsub(/ /, "", $2); split($3, a, " "); split(a[2], b, "/");
                     print b[1], $2}'
}

if [ "${1:-}" = --index ]; then
    [ -n "${2:-}" ] || die "usage: $0 --index APTDIR"
    make_index "$2"
    index_versions "$2"
    exit 0
fi

OUT=${1:?usage: build-xen-src.sh OUTDIR | --index APTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if [ "${XCI_IN_NS:-}" != 1 ]; then
    exec unshare --mount --propagation private env XCI_IN_NS=1 "$0" "$@"
fi

W=$(mktemp -d /tmp/xci-xensrc.XXXXXX)
trap 'cd /; umount -R "$W" 2>/dev/null || true; rm -rf "$W"' EXIT
mount -t tmpfs -o size=10g,mode=0755 tmpfs "$W"
BLOG=$W/build.log
: >"$BLOG"
fail() {
    log "$*"
    tail -200 "$BLOG" >"$OUT/build.log" 2>/dev/null || true
    log "last lines of the build log ($OUT/build.log):"
    tail -25 "$BLOG" >&2 || true
    exit 1
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f", b - a}'; }
T0=$(now)
: >"$OUT/timings"
timing() { echo "$1 $2" >>"$OUT/timings"; log "$1: $2 s"; }

# --- source, through apt -------------------------------------------------------------
APTDIR=${XENSRC_APT_DIR:-}
if [ -z "$APTDIR" ]; then
    APTDIR=$W/apt
    make_index "$APTDIR"
fi
mapfile -t avail < <(index_versions "$APTDIR")
[ ${#avail[@]} -gt 0 ] || die "no xen source package in the private index ($APTDIR)"
log "xen source packages: $(printf '%s; ' "${avail[@]}")"
# Order: any >= 4.21 first (newest first), then the preference list.
cands=()
for line in "${avail[@]}"; do
    v=${line#* }
    if dpkg --compare-versions "$v" ge 4.21~; then cands+=("$line"); fi
done
if [ ${#cands[@]} -gt 0 ]; then
    log "a xen source >= 4.21 exists: ${cands[*]}"
    mapfile -t cands < <(printf '%s\n' "${cands[@]}" | sort -k2,2Vr)
fi
for s in ${XENSRC_SUITES:-$DEFAULT_SUITES}; do
    for line in "${avail[@]}"; do
        [ "${line%% *}" = "$s" ] && cands+=("$line")
    done
done
SRC=$W/src
mkdir -p "$SRC"
chmod 777 "$SRC"
suite= ver=
for line in "${cands[@]}"; do
    s=${line%% *} v=${line#* }
    log "apt-get source --download-only xen=$v ($s)"
    # shellcheck disable=SC2046
    if (cd "$SRC" && apt-get $(apt_opts "$APTDIR") -q source --download-only "xen=$v") \
            >>"$BLOG" 2>&1 && ls "$SRC"/xen_*.orig.tar.* >/dev/null 2>&1; then
        suite=$s ver=$v
        break
    fi
    log "  not obtainable from the mirror ($(tail -4 "$BLOG" | grep -m1 -o '[0-9]\{3\} [A-Za-z ]*\[' | tr -d '[' || echo failed)); next"
    rm -f "$SRC"/*
done
[ -n "$suite" ] || fail "no xen source package could be downloaded (tried: ${cands[*]})"
ORIG=$(ls "$SRC"/xen_*.orig.tar.*)
T1=$(now); timing download "$(secs "$T0" "$T1")"
{
    echo "suite $suite"
    echo "package xen $ver"
    echo "orig $(basename "$ORIG") $(sha256sum "$ORIG" | cut -d' ' -f1)"
} >"$OUT/source"

# Upstream's tree as Debian ships it (.orig); Debian's own packaging patches are not
# applied (they rework the install layout for Debian's packages).
mkdir -p "$W/build"
tar -C "$W/build" -xf "$ORIG"
T=$(ls -d "$W"/build/*/ | head -1)
cd "$T"
[ -f xen/Makefile ] && [ -d tools/console/daemon ] || fail "unexpected source layout in $ORIG"

XENMAKE=()
if dpkg --compare-versions "$ver" ge 4.21~; then
    log "xen $ver has the connection flag already: no patches, no version override"
else
    for p in "$PATCHDIR"/*.patch; do
        log "patch $(basename "$p")"
        patch -p1 -N --no-backup-if-mismatch <"$p" >>"$BLOG" 2>&1 || fail "patch $(basename "$p") failed"
    done
    grep -q 'uint8_t connection;' xen/include/public/io/console.h || fail "patched console.h has no flag"
    XENMAKE=(XEN_SUBVERSION=$FLAG_SUBVERSION XEN_EXTRAVERSION=$FLAG_EXTRAVERSION)
fi
T2=$(now); timing unpack-patch "$(secs "$T1" "$T2")"

# --- build, without network ---------------------------------------------------------------
nonet() { unshare --net "$@"; }
export PYTHONDONTWRITEBYTECODE=1
CONFIGURE=(--prefix=/usr --libdir=/usr/lib --sysconfdir=/etc --localstatedir=/var
    --with-sysconfig-leaf-dir=default --with-initddir=/etc/init.d --disable-stubdom
    --disable-docs --disable-seabios --disable-ovmf --disable-ipxe --disable-rombios
    --disable-pvshim --disable-golang --disable-ocamltools --disable-pygrub
    --disable-xsmpolicy --disable-systemd --with-xenstored=xenstored
    --with-system-qemu=/usr/bin/qemu-system-i386)
if ./tools/configure --help | grep -q -- '--enable-qemu-traditional'; then
    CONFIGURE+=(--disable-qemu-traditional)
fi
log "configure"
nonet ./configure "${CONFIGURE[@]}" >>"$BLOG" 2>&1 || fail "configure failed"
T3=$(now); timing configure "$(secs "$T2" "$T3")"

log "make -j$JOBS dist-xen ${XENMAKE[*]}"
nonet make -j"$JOBS" dist-xen "${XENMAKE[@]}" >>"$BLOG" 2>&1 || fail "make dist-xen failed"
T4=$(now); timing dist-xen "$(secs "$T3" "$T4")"

log "make -j$JOBS dist-tools"
nonet make -j"$JOBS" dist-tools >>"$BLOG" 2>&1 || fail "make dist-tools failed"
T5=$(now); timing dist-tools "$(secs "$T4" "$T5")"

# --- outputs -----------------------------------------------------------------------------
file -b xen/xen | grep -q 'ELF 32-bit' || fail "xen/xen is not a 32-bit ELF: $(file -b xen/xen)"
XENVER=$(make -s -C xen xenversion "${XENMAKE[@]}" 2>/dev/null | tail -1)
[ -n "$XENVER" ] || fail "cannot read the hypervisor version"
grep -aq "$XENVER" xen/xen || fail "xen/xen does not contain its version $XENVER"
echo "$XENVER" >"$OUT/version"
cp xen/xen "$OUT/xen.elf.tmp"
# Not boot/ (the hypervisor, shipped as xen.elf) nor var/run (a symlink to /run in a
# Debian root, which extracting a directory there would replace).
tar -C dist/install --numeric-owner --owner=0 --group=0 --exclude=./boot --exclude=./var/run \
    -czf "$OUT/dist-install.tar.gz.tmp" .
mv "$OUT/xen.elf.tmp" "$OUT/xen.elf"
mv "$OUT/dist-install.tar.gz.tmp" "$OUT/dist-install.tar.gz"
rm -f "$OUT/build.log"
T6=$(now); timing outputs "$(secs "$T5" "$T6")"
timing total "$(secs "$T0" "$T6")"
log "done: xen $ver ($suite), hypervisor $XENVER, in $(secs "$T0" "$T6") s"
