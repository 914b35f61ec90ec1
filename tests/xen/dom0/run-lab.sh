#!/bin/bash
# The Xen lab's dom0 runner: start the Xen daemons, install the project from the
# host-built wheels, create two PV guests, run the selected scenarios in order, report
# each on the console (hvc0 -> Xen -> serial) with markers, power off.
# Markers: "@@XCI:<token> <WORD> ...", each on its own line (a newline is printed first,
# since Xen may interleave its own messages).
set -u
. /opt/xci/lab.conf        # XCI_TOKEN XCI_SCENARIOS XCI_DEFAULT_TIMEOUT XCI_PIP_ARGS
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mark() { printf '\n@@XCI:%s %s\n' "$XCI_TOKEN" "$*"; }
up() { cut -d' ' -f1 /proc/uptime; }
W=/tmp/xci
mkdir -p "$W"
mark STAGE userspace "$(up)"

# xenconsoled logs every guest's output to /var/log/xen/console/guest-NAME.log.
if grep -q '^XENCONSOLED_ARGS=' /etc/default/xen 2>/dev/null; then
    sed -i 's/^XENCONSOLED_ARGS=.*/XENCONSOLED_ARGS="--log=guest"/' /etc/default/xen
else
    echo 'XENCONSOLED_ARGS="--log=guest"' >>/etc/default/xen
fi
if ! /etc/init.d/xen start >"$W/xen-start.log" 2>&1; then
    mark SETUP FAIL "xen init script"
    cat "$W/xen-start.log"
fi
mark STAGE xen-started "$(up)" xenstored="$(pidof oxenstored xenstored)" xenconsoled="$(pidof xenconsoled)"

# The project, from wheels built on the host (pip cannot reach an index from here).
# Debian's python3-cffi/python3-pyxs stay; pip puts what the project needs that they
# do not satisfy (textual, ...) under /usr/local, which comes first.
(
    t0=$(up)
    # shellcheck disable=SC2086
    pip install --break-system-packages --no-index --find-links /opt/xci/wheels \
        --no-warn-script-location --disable-pip-version-check --root-user-action=ignore \
        $XCI_PIP_ARGS xcinspect
    rc=$?
    echo "pip: rc=$rc in $(awk -v a="$(up)" -v b="$t0" "BEGIN{print a-b}") s"
    exit $rc
) >"$W/pip.log" 2>&1 &
pip_pid=$!

for i in 1 2; do
    cat >"/etc/xen/guest$i.cfg" <<EOT
name = "guest$i"
type = "pv"
kernel = "/opt/xci/vmlinuz"
ramdisk = "/opt/xci/guest.cpio.gz"
extra = "console=hvc0 quiet xci_name=guest$i"
memory = 128
vcpus = 1
on_crash = "preserve"
EOT
done
# Both at once: building a domain under TCG takes ~10 s each.
xl create "/etc/xen/guest1.cfg" >"$W/xl-create-1.log" 2>&1 &
c1=$!
sleep 1
xl create "/etc/xen/guest2.cfg" >"$W/xl-create-2.log" 2>&1 &
c2=$!
for i in 1 2; do
    c=c$i
    if ! wait "${!c}"; then
        mark SETUP FAIL "xl create guest$i"
        cat "$W/xl-create-$i.log"
    fi
done
mark STAGE guests-created "$(up)"

# Wait until both guests tick (their output reaches xenconsoled's logs).
for i in $(seq 1 600); do
    n=0
    for g in guest1 guest2; do
        grep -aq "^tick 3 " "/var/log/xen/console/guest-$g.log" 2>/dev/null && n=$((n + 1))
    done
    [ $n = 2 ] && break
    sleep 0.2
done
[ $n = 2 ] || mark SETUP FAIL "guests not ticking after 120 s"
mark STAGE guests-ticking "$(up)"

export XCI_LIB=/opt/xci/lib.sh XCI_RING=/opt/xci/ring.py XCI_GUESTS="guest1 guest2"
export XCI_GUEST1=guest1 XCI_GUEST2=guest2
XCI_DOMID1=$(xl domid guest1 2>/dev/null); XCI_DOMID2=$(xl domid guest2 2>/dev/null)
export XCI_DOMID1 XCI_DOMID2
export XCI_CONSOLE_LOG_DIR=/var/log/xen/console

evidence() {
    echo "--- xl list"; xl list
    echo "--- xenstore-ls -f /local/domain"; xenstore-ls -f /local/domain
    echo "--- processes"; ps -eo pid,ppid,stat,etime,args | grep -v ' \[.*\]$'
    echo "--- xenconsoled: pid $(pidof xenconsoled || echo none), pid file $(cat /run/xenconsoled.pid 2>/dev/null || echo none)"
    for d in $XCI_DOMID1 $XCI_DOMID2; do
        echo "--- raw ring dom$d"; python3 /opt/xci/ring.py "$d" --tail 200
    done
    echo "--- locks"; ls -la /run/lock/; cat /proc/locks
    for f in /var/log/xen/console/*.log; do
        [ -e "$f" ] || continue
        echo "--- tail of $f"; tail -c 1200 "$f"
    done
    echo "--- dmesg (tail)"; dmesg | tail -20
    echo "--- xl dmesg (tail)"; xl dmesg | tail -10
}

# Back to the reference state between scenarios: no stray clients or backends,
# xenconsoled running and servicing both guests.
restore() {
    tmux kill-server 2>/dev/null
    pkill -f '/xcinspect' 2>/dev/null
    pkill -x xenconsole 2>/dev/null
    sleep 0.3
    pkill -9 -f '/xcinspect' 2>/dev/null
    if ! pidof xenconsoled >/dev/null; then
        # shellcheck disable=SC1091
        . /etc/default/xen
        # shellcheck disable=SC2086
        xenconsoled ${XENCONSOLED_ARGS:-} --pid-file /run/xenconsoled.pid
        sleep 0.5
        for d in $XCI_DOMID1 $XCI_DOMID2; do   # fire its console watch: rebind if it missed
            t=$(xenstore-read "/local/domain/$d/console/tty" 2>/dev/null) &&
                xenstore-write "/local/domain/$d/console/tty" "$t"
        done
    fi
}

# The project is installed in the background; the first scenario that needs it waits.
pip_rc=
wait_pip() {
    [ -n "$pip_rc" ] && return
    wait $pip_pid
    pip_rc=$?
    mark STAGE pip-done "$(up)" rc=$pip_rc
    if [ $pip_rc != 0 ]; then
        mark SETUP FAIL "pip install (rc $pip_rc)"
        tail -40 "$W/pip.log"
    fi
}

sel=" ${XCI_SCENARIOS} "
for f in /opt/xci/scenarios/*.sh; do
    s=$(basename "$f" .sh)
    case "$sel" in *" all "*|*" $s "*|*" ${s%%-*} "*) ;; *) continue ;; esac
    to=$(sed -n 's/^# xci-timeout: *\([0-9][0-9]*\).*/\1/p' "$f" | head -1)
    to=${to:-$XCI_DEFAULT_TIMEOUT}
    grep -q '^# xci-needs-project: *no' "$f" || wait_pip
    export XCI_OUT="$W/$s"
    mkdir -p "$XCI_OUT"
    mark BEGIN "$s" timeout="$to" "$(up)"
    t0=$(date +%s%N)
    (cd "$XCI_OUT" && exec setsid timeout -k 5 "$to" bash "$f") >"$XCI_OUT/output.txt" 2>&1 </dev/null
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    [ $rc = 124 ] && echo "TIMEOUT after ${to} s" >>"$XCI_OUT/output.txt"
    mark OUTPUT-BEGIN "$s"
    cat "$XCI_OUT/output.txt"
    mark OUTPUT-END "$s"
    if [ $rc = 0 ]; then
        mark END "$s" PASS rc=0 ms=$ms
    else
        mark EVIDENCE-BEGIN "$s"
        evidence 2>&1
        mark EVIDENCE-END "$s"
        mark END "$s" FAIL rc=$rc ms=$ms
    fi
    restore >/dev/null 2>&1
done
wait_pip
grep -E '^(pip: |Successfully installed)' "$W/pip.log"
mark DONE "$(up)"
sync
busybox poweroff -f || echo o >/proc/sysrq-trigger
