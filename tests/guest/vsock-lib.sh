# Sourced by the guest scripts of tests/tests/vsock.rs. Everything goes to the console as "vsock-test: ...".
T=/vsock-test
PATH=$T/bin:$PATH
# The container rootfs may be read-only: scratch files live in /run.
TMPDIR=/run/vsock-test-tmp
export TMPDIR
mkdir -p "$TMPDIR"
exec >/dev/console 2>&1
say() { echo "vsock-test: $*"; }
fail() {
    say "FAILED: $*"
    exit 1
}
# wait_for DESCRIPTION COMMAND...: retries COMMAND every 0.2 s until it succeeds or WAIT_SECONDS (default
# 300) have passed on the guest's clock (a deadline, not a timing: a slow COMMAND does not stretch it).
wait_for() {
    what=$1
    shift
    deadline=$(($(date +%s) + ${WAIT_SECONDS:-300}))
    until "$@"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            say "fds=${now:-?} clients: $(cat "$TMPDIR"/cps* 2>/dev/null | tr '\n' ' ')"
            fail "timed out waiting for $what"
        fi
        sleep 0.2
    done
}
# The forwarder's log (the service's stderr, /var/log/vsudd.log), copied to the console as it grows.
follow_vsudd_log() {
    tail -F /var/log/vsudd.log 2>/dev/null | while IFS= read -r line; do echo "vsudd-log: $line"; done &
}
vsudd_logged() { grep -q "$1" /var/log/vsudd.log 2>/dev/null; }
# vsudd_pid PATTERN: the pid (host pid namespace) of the forwarder whose command line contains PATTERN.
vsudd_pid() {
    for d in /proc/[0-9]*; do
        case "$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null)" in
        "/vsudd "*"$1"*)
            echo "${d#/proc/}"
            return 0
            ;;
        esac
    done
    return 1
}
# signal_state PID: the signal masks of a process, for diagnosing a report that does not come.
signal_state() { grep -E '^(Sig|Shd)(Pnd|Blk|Ign|Cgt)' "/proc/$1/status" | tr -s '\t\n' '  '; }
