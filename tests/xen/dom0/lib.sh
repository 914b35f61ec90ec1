# Helpers for the Xen lab's scenarios (source "$XCI_LIB"). Scenarios run as root in
# dom0, from the reference state: xenconsoled running and servicing both guests.
# Exit 0 = pass. Print what you checked; the runner shows it, plus evidence on failure.
set -u

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
note() { echo "# $*"; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# wait_for SECONDS CMD...: run CMD every 0.2 s until it succeeds; 1 on timeout.
# SECONDS x XCI_TIMEOUT_SCALE (1 on x86; xenarm's emulated arm64 dom0 is slower).
wait_for() {
    local end=$(( $(now_ms) + $1 * ${XCI_TIMEOUT_SCALE:-1} * 1000 ))
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

# xci_json FILE [ARGS]: xcinspect --once --json [ARGS] into FILE (fails the scenario on error).
xci_json() {
    local rc=0 f=$1
    shift
    set -- "$f" "$@"
    xcinspect --once --json "${@:2}" >"$1" 2>"$1.err" || rc=$?
    [ $rc = 0 ] || { cat "$1.err"; fail "xcinspect --once --json exited $rc"; }
    jq -e . "$1" >/dev/null || { head -c 2000 "$1"; fail "xcinspect --once --json: not JSON"; }
}
# dom_json FILE NAME: the domain object named NAME.
dom_json() { jq -c --arg n "$2" '.domains[] | select(.name == $n)' "$1"; }

# attach_echo NAME OUTFILE [xcinspect attach args]: type `echo XC-$((6*7))` into the
# guest through a non-interactive `xcinspect attach`; true if `XC-42` came back.
attach_echo() {
    local name=$1 out=$2 k=${XCI_TIMEOUT_SCALE:-1} lead=1 tail=3
    shift 2
    # a slow dom0 (k > 1): stdin stays open until attach has long started and answered
    [ "$k" -gt 1 ] && { lead=$((10 * k)); tail=$((5 * k)); }
    { sleep $lead; printf 'echo XC-$((6*7))\n'; sleep $tail; } |
        timeout $((40 * k)) xcinspect attach "$@" "$name" >"$out" 2>"$out.err"
    echo "attach exit $?"
    grep -aq 'XC-42' "$out"
}

# --- the console flag (byte 3088 of the page) and the guest's CPU time
byte3088() { ring "$1" byte3088; }
set_byte3088() { python3 "$XCI_RING" "$1" --set-byte "3088=$2"; }
# cpu_time NAME: seconds of CPU time in `xl list` (it rises while the guest runs or spins).
cpu_time() { xl list "$1" | awk 'NR == 2 {print $6}'; }
# float_gt A B: A > B + (C, default 0)
float_gt() { awk -v a="$1" -v b="$2" -v c="${3:-0}" 'BEGIN { exit !(a > b + c) }'; }
audit_log() { python3 -c 'from xcinspect.platform.dom0 import Dom0Platform; print(Dom0Platform().audit_log_path())' 2>/dev/null || echo /var/log/xcinspect/audit.log; }
audit_lines() { local f; f=$(audit_log); [ -f "$f" ] && wc -l <"$f" || echo 0; }
# jq_is JSON FILTER WANT WHAT: fail unless `jq -r FILTER` of JSON is WANT.
jq_is() {
    local got
    got=$(jq -r "$2" <<<"$1")
    [ "$got" = "$3" ] || fail "$4: $2 is '$got', want '$3'"
    ok "$4: $2 = $3"
}
# xcinspect_flag NAME STATE OUT: run `xcinspect flag NAME STATE`; sets $flag_rc.
xcinspect_flag() {
    flag_rc=0
    xcinspect flag "$1" "$2" >"$3" 2>"$3.err" || flag_rc=$?
    note "xcinspect flag $1 $2: exit $flag_rc: $(cat "$3") $(cat "$3.err")"
}
# soft_fail MSG: a failed check that lets the scenario go on (its later checks still run);
# finish: exit 1 if any soft check failed.
soft_failures=0
soft_fail() { echo "FAIL: $*"; soft_failures=$((soft_failures + 1)); }
finish() { [ "$soft_failures" = 0 ] || { echo "FAIL: $soft_failures check(s) failed (above)"; exit 1; }; ok "all checks passed"; }
# reason_has JSON TEXT WHO: soft check that .verdict.reason contains TEXT.
reason_has() {
    local r
    r=$(jq -r .verdict.reason <<<"$1")
    if grep -qF -- "$2" <<<"$r"; then ok "$3: reason has '$2'"; else soft_fail "$3: reason lacks '$2': $r"; fi
}
