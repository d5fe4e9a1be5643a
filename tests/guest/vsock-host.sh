#!/bin/sh
# Guest side of `vsock_host_*` in tests/tests/vsock.rs (vhost-user-vsock, guest CID 3). The packaged vsudd
# service forwards vsock port 2374 to /run/echo.sock (host -> guest) and /run/host.sock to the host's port
# 5000 (guest -> host). The host test connects after "ready"; the guest client runs at once (the host
# listener exists before boot). No half-close towards the host: vhost-device-vsock would turn it into a
# full shutdown.
. /vsock-test/guest/vsock-lib.sh
follow_vsudd_log
socat -t 60 UNIX-LISTEN:/run/echo.sock,fork,unlink-early EXEC:cat &
wait_for "the echo backend" test -S /run/echo.sock
wait_for "vsudd to listen on vsock" vsudd_logged "Listening on port 2374"
wait_for "vsudd to listen on the unix socket" vsudd_logged "Listening on unix:/run/host.sock"
say "ready"

# The host answers one line and closes; socat's stdin stays open (sleep) so the guest never half-closes.
reply=$( (echo hello-from-guest; sleep 20) | socat -t 5 - UNIX-CONNECT:/run/host.sock)
say "guest-to-host reply=$reply"
