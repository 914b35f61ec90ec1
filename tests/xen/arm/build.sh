#!/bin/bash
# Exploratory (issue 17): build the inputs of a Xen/Arm (arm64) lab host under QEMU TCG.
# Not run by `make test`, `make test-xen` or CI.  Usage: bash tests/xen/arm/build.sh [WORKDIR]
# Needs root (for apt-get download as root), qemu-system-arm on the host, cpio, gzip.
# The mirror is read from the host's apt configuration (tests/xen/lab.py debian_mirror());
# the host's /etc/apt is never changed: a private sources list/lists dir under WORKDIR.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
W=${1:-/tmp/arm-lab}
mkdir -p "$W" && cd "$W"
MIRROR=$(cd "$REPO" && python3 -c "from tests.xen.lab import debian_mirror; print(debian_mirror())")
mkdir -p apt/lists/partial apt/cache/archives/partial debs root-debs
chmod 777 debs root-debs
echo "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bookworm main" > apt/sources.list
OPTS=(-o Dir::Etc::SourceList="$W/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o Dir::State::Lists="$W/apt/lists" -o Dir::Cache="$W/apt/cache"
      -o Dir::State::status=/dev/null -o APT::Sandbox::User=root
      -o APT::Architecture=arm64 -o APT::Architectures=arm64)
apt-get "${OPTS[@]}" update -qq
KPKG=$(apt-cache "${OPTS[@]}" depends linux-image-arm64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
KVER=${KPKG#linux-image-}
(cd debs && apt-get "${OPTS[@]}" download -q xen-hypervisor-4.17-arm64 "$KPKG" busybox-static)
rm -rf x && mkdir x && for d in debs/*.deb; do dpkg-deb -x "$d" x; done
cp x/boot/xen-4.17-arm64 xen            # an arm64 "Image" (QEMU -kernel loads it at EL2)
cp "x/boot/vmlinuz-$KVER" Image         # uncompressed arm64 Image: dom0 and guest kernel

# dom0 root: the dependency closure of these packages, unpacked with dpkg-deb -x (no
# maintainer scripts, no qemu-user-static); ldconfig runs in the booted dom0.
# (Status file is empty, so -s lists the whole closure; bash/libc-bin/coreutils are
# Essential and not pulled in by Depends, so named explicitly.)
apt-get "${OPTS[@]}" install -s xen-utils-4.17 xenstore-utils python3-cffi busybox-static \
    bash libc-bin coreutils | awk '/^Inst /{print $2"="substr($3,2)}' > pkgs.txt
(cd root-debs && apt-get "${OPTS[@]}" download -q $(cat ../pkgs.txt))
rm -rf root && mkdir -p root/usr/{bin,sbin,lib}
for d in root-debs/*.deb; do dpkg-deb -x "$d" root; done
# dpkg-deb -x replaces bin/sbin/lib symlinks by directories: merge them into usr afterwards
for d in bin sbin lib; do
    if [ -d root/$d ] && [ ! -L root/$d ]; then cp -a root/$d/. root/usr/$d/ && rm -rf root/$d; fi
    ln -sfn usr/$d root/$d
done
[ -e root/usr/bin/sh ] || ln -s bash root/usr/bin/sh
mkdir -p "root/usr/lib/modules/$KVER/kernel/drivers" root/{proc,sys,dev,run,tmp,root}
cp -a "x/lib/modules/$KVER/kernel/drivers/xen" "root/usr/lib/modules/$KVER/kernel/drivers/"
rm -rf root/usr/share/{doc,man,locale}
# the guest: static busybox + an init printing numbered lines on hvc0, then sh -i
rm -rf g && mkdir -p g/{bin,dev,proc,sys}
cp x/bin/busybox g/bin/ && install -m755 "$HERE/guest-init" g/init
(cd g && find . | cpio -H newc -o --quiet | gzip -1) > root/root/guest.cpio.gz
cp Image root/root/Image && cp "$HERE/guest.cfg" root/root/guest.cfg
install -m755 "$HERE/dom0-init" root/init
(cd root && find . | cpio -H newc -o --quiet | gzip -1) > dom0.cpio.gz
ls -la xen Image dom0.cpio.gz
