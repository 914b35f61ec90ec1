#!/bin/bash
# xci-timeout: 120
# TUI: `xcinspect` inside dom0 under tmux (TERM=xterm-256color, 120x40) shows both
# guests and the stalled verdict (xenconsoled stopped, rings full).
. "$XCI_LIB"

stop_xenconsoled
wait_for 20 ring_full "$XCI_DOMID1" || fail "guest1 ring not full after stopping xenconsoled"
ok "xenconsoled stopped, guest1 ring full"

export TERM=xterm-256color
tmux -u -f /dev/null new-session -d -s xci -x 120 -y 40 "env TERM=xterm-256color xcinspect; echo 'xcinspect exited'; sleep 600" ||
    fail "tmux new-session failed"
shows_all() {
    tmux capture-pane -p -t xci >screen.txt 2>/dev/null &&
        grep -q guest1 screen.txt && grep -q guest2 screen.txt && grep -q stalled screen.txt
}
wait_for 90 shows_all
rc=$?
cat screen.txt
tmux kill-server
[ $rc = 0 ] || fail "the TUI screen lacks guest1, guest2 or 'stalled'"
ok "TUI shows guest1, guest2 and stalled"
start_xenconsoled
