# net_check.sh - helpers for the checks of the network examples
# (examples/expected/*.check.sh source it).  POSIX sh.
#
#   start_server NAME ARGS...   run examples/NAME in the background (under
#                               $WEFT_EXAMPLE_WRAPPER if set), its stdout in
#                               $tmp/NAME.out; sets server_pid
#   wait_port NAME PREFIX       wait (at most 60 s) for the line of
#                               $tmp/NAME.out that starts with PREFIX and
#                               set port to the number that follows it
#   stop_server [STATUS]        SIGTERM, wait; fail unless it exits STATUS
#                               (default 143 = 128 + SIGTERM)
#   fail MESSAGE                print, show the outputs, exit 1
#   same FILE EXPECTED-TEXT WHAT  compare a file with a text

set -u
dir=$1
tmp=$(mktemp -d)
server_pid=
wrap=${WEFT_EXAMPLE_WRAPPER:-}

cleanup() {
    [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    for f in "$tmp"/*.out "$tmp"/*.err; do
        [ -f "$f" ] || continue
        echo "---- $(basename "$f") ----"
        cat "$f"
    done
    exit 1
}

start_server() {
    name=$1
    shift
    # Emptied here, not by the background redirection: that one runs in the
    # child, and wait_port could meanwhile read an earlier server's port.
    : >"$tmp/$name.out"
    : >"$tmp/$name.err"
    # shellcheck disable=SC2086
    $wrap "$dir/$name" "$@" >>"$tmp/$name.out" 2>>"$tmp/$name.err" &
    server_pid=$!
}

wait_port() {
    i=0
    while [ $i -lt 600 ]; do
        line=$(grep -m1 "^$2" "$tmp/$1.out" 2>/dev/null)
        if [ -n "$line" ]; then
            port=$(echo "${line#"$2"}" | sed 's/[^0-9].*//')
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || fail "$1 exited before listening"
        sleep 0.1
        i=$((i + 1))
    done
    fail "$1 printed no '$2' line within 60 s"
}

stop_server() {
    want=${1:-143}
    kill -TERM "$server_pid"
    wait "$server_pid"
    rc=$?
    server_pid=
    [ "$rc" = "$want" ] || fail "the server exited with status $rc, not $want"
}

same() {
    printf '%s\n' "$2" >"$tmp/expected"
    if ! diff -u "$tmp/expected" "$1" >"$tmp/diff"; then
        cat "$tmp/diff"
        fail "$3"
    fi
}
