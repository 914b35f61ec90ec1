#!/bin/bash
# xci-timeout: 60
# Bad environment: run as a non-root user, xcinspect prints one clear line on stderr
# and exits 2 (no traceback).
. "$XCI_LIB"
id xciuser >/dev/null 2>&1 || useradd -M -d /tmp -s /bin/bash xciuser

check() {
    local what=$1
    shift
    local rc=0
    runuser -u xciuser -- env HOME=/tmp "$@" >"$what.out" 2>"$what.err" </dev/null || rc=$?
    note "$* (as xciuser): exit $rc; stderr:"
    cat "$what.err"
    [ $rc = 2 ] || fail "$*: exit $rc, want 2"
    [ "$(grep -c . "$what.err")" = 1 ] || fail "$*: want exactly one line on stderr"
    grep -q Traceback "$what.err" "$what.out" && fail "$*: traceback"
    ok "$*: one line, exit 2"
}
check once xcinspect --once --json
check connect xcinspect connect "$XCI_GUEST1"
