#!/bin/bash
# The Xen lab's dom0 runner: start the Xen daemons, install the project from the
# host-built wheels, create two PV guests, run the selected scenarios in order, report
# each on the console (hvc0 -> Xen -> serial) with markers, power off.
# Markers: "@@XCI:<token> <WORD> ...", each on its own line (a newline is printed first,
# since Xen may interleave its own messages).
set -u
. /opt/xci/lab.conf        # XCI_TOKEN XCI_SCENARIOS XCI_DEFAULT_TIMEOUT XCI_HOST XCI_GUEST_SPECS
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# xenarm: Debian's daemons (oxenstored, xenconsoled, xen-init-dom0) in Xen's own bin dir.
if [ "${XCI_HOST:-}" = xenarm ]; then
    export PATH=$PATH:/usr/lib/xen-4.17/bin
    # connect's wait for its backend's first status line: 60 s (product default 30) x the scale
    export XCINSPECT_BACKEND_TIMEOUT=$(( 60 * ${XCI_TIMEOUT_SCALE:-1} ))
    # and xenstored's answers (2 s): oxenstored took longer at load 15-20
    export XCINSPECT_XS_TIMEOUT=$(( 2 * ${XCI_TIMEOUT_SCALE:-1} ))
fi
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
if [ "${XCI_HOST:-xen417}" = xen421 ]; then
    # Xen built from source, no Debian init script: what xencommons does, by hand.
    (
        set -e
        mkdir -p /var/lib/xenstored /var/run/xen /var/log/xen
        xenstored --pid-file /run/xenstored.pid
        for i in $(seq 1 100); do [ -S /run/xenstored/socket ] && break; sleep 0.1; done
        /usr/lib/xen/bin/xen-init-dom0
        xenconsoled --log=guest --pid-file /run/xenconsoled.pid
    ) >"$W/xen-start.log" 2>&1 || { mark SETUP FAIL "xen daemons (by hand)"; cat "$W/xen-start.log"; }
elif [ "$XCI_HOST" = xenarm ]; then
    # Debian's arm64 xen-utils-4.17, unpacked without maintainer scripts: its init script
    # wants choom and finds "no suitable xenstored"; the daemons by hand (oxenstored).
    (
        set -e
        mkdir -p /var/lib/xenstored /var/run/xen /var/log/xen
        oxenstored --pid-file /run/xenstored.pid
        for i in $(seq 1 100); do [ -S /run/xenstored/socket ] && break; sleep 0.1; done
        xen-init-dom0
        xenconsoled --log=guest --pid-file /run/xenconsoled.pid
    ) >"$W/xen-start.log" 2>&1 || { mark SETUP FAIL "xen daemons (by hand, xenarm)"; cat "$W/xen-start.log"; }
elif ! /etc/init.d/xen start >"$W/xen-start.log" 2>&1; then
    mark SETUP FAIL "xen init script"
    cat "$W/xen-start.log"
fi
mark STAGE xen-started "$(up)" xenstored="$(pidof oxenstored xenstored)" xenconsoled="$(pidof xenconsoled)"

# The project and its pure-Python dependencies: installed on the build host into
# /usr/local (lab.preinstalled_site; pip inside a TCG dom0 took 1-6 minutes every boot).
# Debian's python3-cffi stays.
(
    if [ ! -e /opt/xci/preinstalled ]; then
        echo "pip: the overlay has no preinstalled project"
        exit 1
    fi
    echo "pip: preinstalled on the build host: $(tr '\n' ' ' </opt/xci/preinstalled)"
) >"$W/pip.log" 2>&1 &
pip_pid=$!

# Guests: "NAME:KERNEL:MEMORY:KIND" (KIND new = Linux >= 7.1, obeys the flag; old = ignores it).
XCI_GUEST_SPECS=${XCI_GUEST_SPECS:-"guest1:vmlinuz:128:- guest2:vmlinuz:128:-"}
names=() kinds=()
# xl's domain type: "pv" on x86; none on Arm (every Arm guest is the PVH-like "xenvm").
XCI_GUEST_TYPE=${XCI_GUEST_TYPE-pv}
guest_type_line=${XCI_GUEST_TYPE:+type = \"$XCI_GUEST_TYPE\"}
for spec in $XCI_GUEST_SPECS; do
    IFS=: read -r gname gkern gmem gkind <<<"$spec"
    names+=("$gname"); kinds+=("$gkind")
    cat >"/etc/xen/$gname.cfg" <<EOT
name = "$gname"
$guest_type_line
kernel = "/opt/xci/$gkern"
ramdisk = "/opt/xci/guest.cpio.gz"
extra = "console=hvc0 quiet xci_name=$gname"
memory = $gmem
vcpus = 1
on_crash = "preserve"
EOT
done
# A third guest for scenarios that create a domain themselves (not started here).
cat >/etc/xen/guest3.cfg <<EOT
name = "guest3"
$guest_type_line
kernel = "/opt/xci/vmlinuz"
ramdisk = "/opt/xci/guest.cpio.gz"
extra = "console=hvc0 quiet xci_name=guest3"
memory = 128
vcpus = 1
on_crash = "preserve"
EOT
# Both at once: building a domain under TCG takes ~10 s each.
pids=()
for i in "${!names[@]}"; do
    [ "$i" -gt 0 ] && sleep 1
    xl create "/etc/xen/${names[$i]}.cfg" >"$W/xl-create-${names[$i]}.log" 2>&1 &
    pids+=($!)
done
for i in "${!names[@]}"; do
    if ! wait "${pids[$i]}"; then
        mark SETUP FAIL "xl create ${names[$i]}"
        cat "$W/xl-create-${names[$i]}.log"
    fi
done
mark STAGE guests-created "$(up)"

# Wait until every guest ticks (its output reaches xenconsoled's log), 180 s at most.
# Any tick from the third on, anywhere on its line: the shell's prompt (sh -i starts
# beside the tick loop) can land in front of a tick line (CI failed here once with both
# logs full of ticks), and a guest that obeys the flag (Linux >= 7.1) on a 4.21 host
# throws its first lines away until xenconsoled connects and writes 0.
end=$(( $(date +%s) + 180 ))
while :; do
    n=0
    for g in "${names[@]}"; do
        grep -aqE "tick ([3-9]|[1-9][0-9]+) " "/var/log/xen/console/guest-$g.log" 2>/dev/null && n=$((n + 1))
    done
    [ $n = ${#names[@]} ] && break
    [ "$(date +%s)" -ge $end ] && break
    sleep 0.5
done
if [ $n != ${#names[@]} ]; then
    mark SETUP FAIL "guests not ticking after 180 s"
    xl list
    ls -la /var/log/xen/console/
    for g in "${names[@]}"; do
        d=$(xl domid "$g")
        echo "--- $g (dom$d)"; xenstore-ls -f "/local/domain/$d/console"
        python3 /opt/xci/ring.py "$d" --tail 300
        tail -c 600 "/var/log/xen/console/guest-$g.log"
    done
    ps -eo pid,args | grep -E '[x]en'
fi
mark STAGE guests-ticking "$(up)"

export XCI_HOST=${XCI_HOST:-xen417} XCI_TIMEOUT_SCALE=${XCI_TIMEOUT_SCALE:-1}
export XCI_LIB=/opt/xci/lib.sh XCI_RING=/opt/xci/ring.py XCI_GUESTS="${names[*]}"
export XCI_GUEST1=${names[0]} XCI_GUEST2=${names[1]}
XCI_DOMID1=$(xl domid "$XCI_GUEST1" 2>/dev/null); XCI_DOMID2=$(xl domid "$XCI_GUEST2" 2>/dev/null)
export XCI_DOMID1 XCI_DOMID2
# Which guest obeys the console flag (Linux >= 7.1) and which ignores it (older).
for i in "${!names[@]}"; do
    case ${kinds[$i]} in
        new) export XCI_GUEST_NEW=${names[$i]}; XCI_DOMID_NEW=$(xl domid "${names[$i]}" 2>/dev/null); export XCI_DOMID_NEW ;;
        old) export XCI_GUEST_OLD=${names[$i]}; XCI_DOMID_OLD=$(xl domid "${names[$i]}" 2>/dev/null); export XCI_DOMID_OLD ;;
    esac
done
mark STAGE guests "$(up)" host=$XCI_HOST guest1=$XCI_GUEST1/$XCI_DOMID1 guest2=$XCI_GUEST2/$XCI_DOMID2 \
    new=${XCI_GUEST_NEW:-none} old=${XCI_GUEST_OLD:-none}
export XCI_CONSOLE_LOG_DIR=/var/log/xen/console

evidence() {
    echo "--- xl list"; xl list
    echo "--- xenstore-ls -f /local/domain"; xenstore-ls -f /local/domain
    echo "--- processes"; ps -eo pid,ppid,stat,etime,args | grep -v ' \[.*\]$'
    echo "--- xenconsoled: pid $(pidof xenconsoled || echo none), pid file $(cat /run/xenconsoled.pid 2>/dev/null || echo none)"
    for d in $(xl list | awk 'NR > 2 {print $2}'); do
        echo "--- raw ring dom$d"; python3 /opt/xci/ring.py "$d" --tail 200
    done
    echo "--- audit log (tail)"; tail -20 /var/log/xcinspect/audit.log 2>/dev/null || echo "(none)"
    echo "--- locks"; ls -la /run/lock/; cat /proc/locks
    for f in /var/log/xen/console/*.log; do
        [ -e "$f" ] || continue
        echo "--- tail of $f"; tail -c 1200 "$f"
    done
    echo "--- dmesg (tail)"; dmesg | tail -20
    echo "--- xl dmesg (tail)"; xl dmesg | tail -10
}

# What a scenario left behind that restore() below puts right (reported, so that a reset
# cannot hide a bug: a backend that should have stopped, a flag an undo did not restore).
leftovers() {
    local p d b
    for p in $(pgrep -f '/xcinspect|-m xcinspect'); do
        [ "$p" = $$ ] || echo "xcinspect:$p"
    done
    pgrep -x xenconsole >/dev/null && echo "xenconsole-client"
    pidof xenconsoled >/dev/null || echo "xenconsoled-down"
    tmux ls >/dev/null 2>&1 && echo "tmux"
    for d in $XCI_DOMID1 $XCI_DOMID2; do
        b=$(python3 /opt/xci/ring.py "$d" 2>/dev/null | jq -r .byte3088 2>/dev/null)
        [ -n "$b" ] && [ "$b" != 0 ] && echo "byte3088=$b:dom$d"
    done
    for d in $(xl list | awk 'NR > 2 {print $1}'); do
        case " $XCI_GUESTS " in *" $d "*) ;; *) echo "domain:$d" ;; esac
    done
}

# Back to the reference state between scenarios: no stray clients or backends,
# xenconsoled running and servicing both guests.
restore() {
    tmux kill-server 2>/dev/null
    for g in $(xl list | awk 'NR > 2 {print $1}'); do      # domains a scenario created
        case " $XCI_GUESTS " in *" $g "*) ;; *) xl destroy "$g" ;; esac
    done
    # the CLI (/usr/local/bin/xcinspect) and the backends `connect` spawns (python3 -m xcinspect)
    pkill -f '/xcinspect|-m xcinspect' 2>/dev/null
    pkill -x xenconsole 2>/dev/null
    sleep 0.3
    pkill -9 -f '/xcinspect|-m xcinspect' 2>/dev/null
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
    # A scenario may leave byte 3088 at 1 (flag "disconnected"): a Linux >= 7.1 guest then
    # throws its console output away. The next scenario starts from 0 (connected).
    if [ -n "${XCI_GUEST_NEW:-}" ]; then
        for d in $XCI_DOMID1 $XCI_DOMID2; do
            [ "$(python3 /opt/xci/ring.py "$d" | jq .byte3088)" = 0 ] ||
                python3 /opt/xci/ring.py "$d" --set-byte 3088=0
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
    to=$(( ${to:-$XCI_DEFAULT_TIMEOUT} * ${XCI_TIMEOUT_SCALE:-1} ))
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
    left=$(leftovers 2>/dev/null | tr '\n' ' ')
    [ -n "$left" ] && mark LEFTOVER "$s" $left
    restore >/dev/null 2>&1
done
wait_pip
grep -E '^(pip: |Successfully installed)' "$W/pip.log"
mark DONE "$(up)"
sync
busybox poweroff -f || echo o >/proc/sysrq-trigger
