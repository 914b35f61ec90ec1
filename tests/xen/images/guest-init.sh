#!/bin/busybox sh
# /init of the Xen lab's busybox PV guest. Console: /dev/hvc0 (xenconsoled or xcinspect).
# Kernel command line: console=hvc0 quiet xci_name=NAME
/bin/busybox mkdir -p /proc /sys /dev /tmp /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
name=guest
for a in $(cat /proc/cmdline); do
    case $a in xci_name=*) name=${a#xci_name=} ;; esac
done
hostname "$name"
exec </dev/hvc0 >/dev/hvc0 2>&1
echo "xci-guest $name: boot line 1: busybox init on hvc0"
echo "xci-guest $name: boot line 2: kernel $(uname -r)"
echo "xci-guest $name: boot line 3: memory $(awk '/MemTotal/{print $2}' /proc/meminfo) kB"
echo "xci-guest $name: boot line 4: ticks every 0.2 s follow"
# ~100-byte tick lines: about 500 B/s, so a ring nobody drains (2048 bytes) is full
# within about 4 s. The pad keeps the tick number first and easy to parse.
pad=........................................................................
(
    i=0
    while :; do
        i=$((i + 1))
        echo "tick $i $name $pad"
        sleep 0.2
    done
) &
echo "xci-guest $name: ready"
while :; do
    setsid -c sh -i </dev/hvc0 >/dev/hvc0 2>&1 || sh -i </dev/hvc0 >/dev/hvc0 2>&1
    sleep 1
done
