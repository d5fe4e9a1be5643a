#!/bin/sh
# Guest side of `vsock_loopback_holds_*_connections_*` in tests/tests/vsock.rs. The packaged vsudd
# service forwards vsock port 2375 to /run/hold.sock, where a second forwarder (the "holder") accepts every
# connection and keeps it while it retries its own target, /run/count.sock, which does not exist yet. So
# every client connection stays open through vsudd until the counting backend starts. Clients connect in
# batches smaller than the listen backlog; vsudd's RSS is read from /proc when all are open. A client's
# vsock connect may take as long as --retry-connect (the kernel's 2 s is too short under TCG): a client
# that gave up on a connect in flight would leave vsudd a connection accepted for nobody.
. /vsock-test/guest/vsock-lib.sh
BATCHES=${BATCHES:-5}
PER_BATCH=${PER_BATCH:-2000}
wait_for "vsudd to listen" vsudd_logged "Listening on port 2375"
wait_for "the vsudd process" vsudd_pid 2375:unix:/run/hold.sock
pid=$(vsudd_pid 2375:unix:/run/hold.sock)
wait_for "the holder" test -S /run/hold.sock
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
fds() { ls "/proc/$pid/fd" | wc -l; }
# Conditions for wait_for (evaluated on every try).
holds_fds() {
    now=$(fds)
    test "$now" -ge "$1"
}
reports() { test "$(grep -c 'Totals:' /var/log/vsudd.log)" -ge "$1"; }
show_clients() { for f in "$TMPDIR"/cps*; do say "$(cat "$f")"; done; }
say "vsudd pid=$pid $(grep 'open files' /proc/$pid/limits | tr -s ' ') $(signal_state "$pid")"
base_fds=$(fds)
say "idle rss-kB=$(rss) fds=$base_fds"

batch=1
while [ "$batch" -le "$BATCHES" ]; do
    vsock-forwarder-bench cps vsock:1:2375 --connections "$PER_BATCH" --concurrency "$PER_BATCH" --retry-connect 120 \
        --label "batch$batch" >"$TMPDIR/cps$batch" 2>&1 &
    clients="${clients:-} $!"
    want=$((base_fds + 2 * batch * PER_BATCH))
    wait_for "batch $batch to be held (want $want vsudd fds; see the last fds= line)" holds_fds "$want"
    say "batch $batch held fds=$(fds) rss-kB=$(rss)"
    batch=$((batch + 1))
done
say "held connections=$((BATCHES * PER_BATCH)) fds=$(fds) rss-kB=$(rss)"
# The report's counts are checked by the test (tests/tests/vsock.rs), not matched here: a mismatch must
# show up as its numbers, not as a wait that never ends.
kill -USR1 "$pid"
wait_for "the Totals line" reports 1
say "report-held $(grep 'Totals:' /var/log/vsudd.log | tail -n 1)"

vsock-forwarder-bench serve unix:/run/count.sock &
wait $clients
say "released fds=$(fds) rss-kB=$(rss)"
show_clients
kill -USR1 "$pid"
wait_for "the second Totals line" reports 2
say "report-released $(grep 'Totals:' /var/log/vsudd.log | tail -n 1)"
say "done"
