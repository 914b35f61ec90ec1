#!/bin/bash
# Exploratory (issue 17): boot Xen 4.17/Arm + arm64 dom0 under QEMU TCG from build.sh's
# outputs, stop at the dom0 init's "@@ARM DONE" marker or a panic.  Not run by CI.
# Usage: bash tests/xen/arm/run.sh [WORKDIR] [TIMEOUT_S]
set -uo pipefail
W=${1:-/tmp/arm-lab}; T=${2:-300}
cd "$W"
LOG=$W/serial.log; rm -f "$LOG"
# Addresses: QEMU puts its DTB at RAM base + 128 MiB (0x48000000) for an AArch64 -kernel,
# so guest-loader modules must not overlap it (an initrd there -> Xen BUG in free_heap_pages).
nice -n 19 qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3 -cpu cortex-a57 \
    -smp 2 -m 2048 -accel tcg,thread=multi -display none -serial "file:$LOG" -monitor none -no-reboot \
    -kernel xen -append "console=dtuart dom0_mem=1024M,max:1024M loglvl=all guest_loglvl=all console_timestamps=boot" \
    -device guest-loader,addr=0x42000000,kernel=Image,bootargs="console=hvc0 earlycon=xen" \
    -device guest-loader,addr=0x50000000,initrd=dom0.cpio.gz &
QP=$!; S=$(date +%s)
for _ in $(seq 1 "$T"); do
    sleep 1
    grep -qE "@@ARM DONE|Panic on CPU|Kernel panic" "$LOG" 2>/dev/null && break
    kill -0 $QP 2>/dev/null || break
done
kill $QP 2>/dev/null; wait $QP 2>/dev/null
echo "elapsed $(( $(date +%s) - S ))s"; grep -a "@@ARM" "$LOG"
