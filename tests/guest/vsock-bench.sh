#!/bin/sh
# Guest side of the vsock benchmark (tests/examples/vsock_bench.rs): vsock-forwarder/bench/run.sh over
# vsock_loopback, forwarder against socat in the same boot; every output line goes to the console prefixed
# "vsock-bench: ". BYTES, CONNECTIONS, CONCURRENCY, ROUNDS, STREAMS come from the service's env.
. /vsock-test/guest/vsock-lib.sh
export FWD=$T/bin/vsock-forwarder BENCH=$T/bin/vsock-forwarder-bench SOCAT=$T/bin/socat
export BYTES=${BYTES:-67108864} CONNECTIONS=${CONNECTIONS:-1000} ROUNDS=${ROUNDS:-3}
say "bench BYTES=$BYTES CONNECTIONS=$CONNECTIONS ROUNDS=$ROUNDS"
sh $T/bench/run.sh vsock 2>&1 | while IFS= read -r line; do echo "vsock-bench: $line"; done
echo "vsock-bench: end"
