# Helpers for the Xen lab's scenarios (source "$XCI_LIB"). Scenarios run as root in
# dom0, from the reference state: xenconsoled running and servicing both guests.
# Exit 0 = pass. Print what you checked; the runner shows it, plus evidence on failure.
set -u

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
note() { echo "# $*"; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# wait_for SECONDS CMD...: run CMD every 0.2 s until it succeeds; 1 on timeout.
wait_for() {
    local end=$(( $(now_ms) + $1 * 1000 ))
    shift
    until "$@"; do
        [ "$(now_ms)" -ge "$end" ] && return 1
        sleep 0.2
    done
}

domid_of() { xl domid "$1"; }
xs() { xenstore-read "$@"; }
guest_log() { echo "$XCI_CONSOLE_LOG_DIR/guest-$1.log"; }

# ring DOMID [FIELD]: raw read of the console page (grant ref 0, read-only).
ring() {
    if [ $# -ge 2 ]; then python3 "$XCI_RING" "$1" | jq -r ".$2"; else python3 "$XCI_RING" "$1"; fi
}
ring_full() { [ "$(ring "$1" out_fill)" = 2048 ]; }
ring_drained() { local j; j=$(ring "$1") && [ "$(jq '.out_cons == .out_prod' <<<"$j")" = true ]; }

# Tick numbers of complete ticks "tick N NAME ...." in a file (one per line, in order).
# Not anchored: a shell prompt can precede a tick on its line.
ticks() { tr -d '\r' <"$1" 2>/dev/null | grep -a -o -E "tick [0-9]+ ${2:-[a-z0-9]+} \.\.\." | awk '{print $2}'; }
last_tick() { ticks "$@" | tail -1; }
# check_ticks FILE NAME: tick numbers strictly consecutive (no gap, no repeat).
check_ticks() {
    ticks "$1" "$2" | awk 'NR > 1 && $1 != prev + 1 { printf "tick sequence broken: %s after %s\n", $1, prev; bad = 1 }
                           { prev = $1; n++ } END { if (!n) { print "no ticks"; exit 1 } exit bad }'
}
tick_above() { local t; t=$(last_tick "$1" "$2"); [ -n "$t" ] && [ "$t" -gt "$3" ]; }

xenconsoled_running() { pidof xenconsoled >/dev/null; }
stop_xenconsoled() {
    local p
    p=$(pidof xenconsoled) || return 0
    kill $p
    wait_for 10 eval '! pidof xenconsoled >/dev/null' || { kill -9 $p; sleep 0.5; }
}
start_xenconsoled() {
    xenconsoled_running && return 0
    # shellcheck disable=SC1091
    . /etc/default/xen
    # shellcheck disable=SC2086
    xenconsoled ${XENCONSOLED_ARGS:-} --pid-file /run/xenconsoled.pid
}

# xci_json FILE: xcinspect --once --json into FILE (fails the scenario on error).
xci_json() {
    local rc=0
    xcinspect --once --json >"$1" 2>"$1.err" || rc=$?
    [ $rc = 0 ] || { cat "$1.err"; fail "xcinspect --once --json exited $rc"; }
    jq -e . "$1" >/dev/null || { head -c 2000 "$1"; fail "xcinspect --once --json: not JSON"; }
}
# dom_json FILE NAME: the domain object named NAME.
dom_json() { jq -c --arg n "$2" '.domains[] | select(.name == $n)' "$1"; }

# attach_echo NAME OUTFILE [xcinspect attach args]: type `echo XC-$((6*7))` into the
# guest through a non-interactive `xcinspect attach`; true if `XC-42` came back.
attach_echo() {
    local name=$1 out=$2
    shift 2
    { sleep 1; printf 'echo XC-$((6*7))\n'; sleep 3; } |
        timeout 40 xcinspect attach "$@" "$name" >"$out" 2>"$out.err"
    echo "attach exit $?"
    grep -aq 'XC-42' "$out"
}
