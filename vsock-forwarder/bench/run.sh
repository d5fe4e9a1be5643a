#!/bin/sh
# Compare vsock-forwarder with socat: throughput and connections per second, in the same run.
#
#   bench/run.sh vsock   # inside a guest: AF_VSOCK over vsock_loopback (CID 1)
#   bench/run.sh tcp     # anywhere: TCP on 127.0.0.1 (the same code paths, no vsock)
#
# Environment: FWD and BENCH (paths of vsock-forwarder and vsock-forwarder-bench; default: next to this
# script's ../../target or on PATH), SOCAT (default socat), BYTES (per throughput run, default 1 GiB),
# STREAMS (default 1 and 4), CONNECTIONS (default 5000), CONCURRENCY (default 16), ROUNDS (default 3).
# Both forwarders forward to the same counting backend on a unix socket; the forwarder runs with -q
# because socat does not log per connection either. Output: one tab-separated line per measurement,
# then the median per target and the forwarder/socat ratios.
set -eu

MODE=${1:-vsock}
FWD=${FWD:-$(command -v vsock-forwarder || echo ./vsock-forwarder)}
BENCH=${BENCH:-$(command -v vsock-forwarder-bench || echo ./vsock-forwarder-bench)}
SOCAT=${SOCAT:-socat}
BYTES=${BYTES:-1073741824}
CONNECTIONS=${CONNECTIONS:-5000}
CONCURRENCY=${CONCURRENCY:-16}
ROUNDS=${ROUNDS:-3}
PORT_FWD=${PORT_FWD:-5001}
PORT_SOCAT=${PORT_SOCAT:-5002}

work=$(mktemp -d)
pids=""
cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

backend="$work/backend.sock"
"$BENCH" serve "unix:$backend" & pids="$pids $!"
"$BENCH" wait "unix:$backend"

case "$MODE" in
vsock)
    # vsock_loopback: connect to CID 1 (VMADDR_CID_LOCAL).
    "$FWD" -q -max-connections 4096 -inport "$PORT_FWD:unix:$backend" & pids="$pids $!"
    "$SOCAT" "VSOCK-LISTEN:$PORT_SOCAT,fork,reuseaddr" "UNIX-CONNECT:$backend" & pids="$pids $!"
    fwd_target="vsock:1:$PORT_FWD"
    socat_target="vsock:1:$PORT_SOCAT"
    ;;
tcp)
    "$FWD" -q -max-connections 4096 -forward "tcp:127.0.0.1:$PORT_FWD=unix:$backend" & pids="$pids $!"
    "$SOCAT" "TCP-LISTEN:$PORT_SOCAT,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$backend" & pids="$pids $!"
    fwd_target="tcp:127.0.0.1:$PORT_FWD"
    socat_target="tcp:127.0.0.1:$PORT_SOCAT"
    ;;
*)
    echo "usage: $0 vsock|tcp" >&2
    exit 2
    ;;
esac
"$BENCH" wait "$fwd_target"
"$BENCH" wait "$socat_target"

results="$work/results"
: >"$results"
round=1
while [ "$round" -le "$ROUNDS" ]; do
    for target in "forwarder $fwd_target" "socat $socat_target" "direct unix:$backend"; do
        set -- $target
        for streams in ${STREAMS:-1 4}; do
            "$BENCH" throughput "$2" --bytes "$BYTES" --streams "$streams" --label "$1" | tee -a "$results"
        done
        "$BENCH" cps "$2" --connections "$CONNECTIONS" --concurrency "$CONCURRENCY" --label "$1" | tee -a "$results"
    done
    round=$((round + 1))
done

echo "--- medians over $ROUNDS rounds (and forwarder/socat ratio)"
awk -F'\t' '
    { kind = $1; label = $2; key = kind "\t" label "\t" ($1 == "throughput" ? $4 : "")
      split($NF, kv, "="); n[key]++; v[key, n[key]] = kv[2] + 0; unit[key] = kv[1] }
    END {
        for (key in n) {
            m = n[key]
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[key, j] < v[key, i]) { t = v[key, i]; v[key, i] = v[key, j]; v[key, j] = t }
            med[key] = (m % 2) ? v[key, (m + 1) / 2] : (v[key, m / 2] + v[key, m / 2 + 1]) / 2
            printf "%s\t%s=%.1f\n", key, unit[key], med[key]
        }
        for (key in med) {
            split(key, p, "\t")
            if (p[2] != "forwarder") continue
            other = p[1] "\tsocat\t" p[3]
            if (other in med && med[other] > 0) printf "ratio\t%s\t%s\tforwarder/socat=%.2f\n", p[1], p[3], med[key] / med[other]
        }
    }' "$results" | sort
