#!/bin/sh
# Guest side of `vsock_loopback_*` in tests/tests/vsock.rs: the packaged vsudd service forwards vsock port
# 2374 to /run/echo.sock; a client on CID 1 (vsock_loopback) sends 1 MiB and half-closes. Then a client
# on port 2376 sends 3 bytes and closes without half-closing, while the target (a second forwarder that
# holds every connection while it retries a socket that never appears) stays silent: vsudd must end that
# connection at once, not when the target gives up 15 minutes later; and one that half-closes first, then
# closes, at the next re-check.
. /vsock-test/guest/vsock-lib.sh
follow_vsudd_log
socat -t 60 UNIX-LISTEN:/run/echo.sock,fork,unlink-early EXEC:$T/guest/echo-backend.sh &
wait_for "the echo backend" test -S /run/echo.sock
wait_for "vsudd to listen" vsudd_logged "Listening on port 2374"
say "ready"

head -c 1048576 /dev/urandom >$TMPDIR/in
socat -t 60 - VSOCK-CONNECT:1:2374 <$TMPDIR/in >$TMPDIR/out || fail "client socat exited $?"
say "echo sent-bytes=$(wc -c <$TMPDIR/in) sent-md5=$(md5sum <$TMPDIR/in | cut -c1-32)" \
    "echoed-md5=$(head -c 1048576 $TMPDIR/out | md5sum | cut -c1-32) received-bytes=$(wc -c <$TMPDIR/out)" \
    "last-line=$(tail -n 1 $TMPDIR/out)"

wait_for "the Done line" vsudd_logged "1 Done."
pid=$(vsudd_pid 2374:unix:/run/echo.sock) || fail "no /vsudd process in /proc"
kill -USR1 "$pid" || fail "kill -USR1 $pid"
say "sent SIGUSR1 to vsudd pid $pid: $(signal_state "$pid")"
wait_for "the Totals line" vsudd_logged "Totals:"

wait_for "the silent target" test -S /run/silent.sock
echo hi | socat -t 0 - VSOCK-CONNECT:1:2376,shut-none || fail "closing client socat exited $?"
wait_for "vsudd to release a closed client whose target is silent" vsudd_logged "2 Done. read: 3 written: 0"
say "closed-client-released"
# The same after a half-close first (socat's default: shutdown on end of input, then close).
echo bye | socat -t 0 - VSOCK-CONNECT:1:2376 || fail "half-closing client socat exited $?"
wait_for "vsudd to release a half-closed, then closed client" vsudd_logged "3 Done. read: 4 written: 0"
say "half-closed-client-released"
sleep 1
say "done"
