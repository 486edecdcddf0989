# The check of examples/http_server.c (run as `sh http_server.check.sh
# EXAMPLES_DIR` by CTest), against real clients:
#   - curl (skipped, saying so, if it is not installed): GET with status,
#     headers and body; two requests on one kept-alive connection; HEAD;
#     HTTP/1.0; a POST with a body gets 405;
#   - wrk, if installed: one second of load on 10 connections, no errors;
#   - examples/http_get against a second server with --delay-ms 200: ten
#     requests in a row, then ten at once, which must take well under a
#     third of the time (a ratio, never an absolute time).
. "$(dirname "$0")/net_check.sh"

start_server http_server --port 0
wait_port http_server "listening on http://127.0.0.1:"
url="http://127.0.0.1:$port/"

if command -v curl >/dev/null 2>&1; then
    curl -sS -i "$url" >"$tmp/curl1.out" 2>"$tmp/curl1.err" || fail "curl GET failed"
    tr -d '\r' <"$tmp/curl1.out" >"$tmp/get.txt"
    same "$tmp/get.txt" "HTTP/1.1 200 OK
Server: weft-example
Content-Type: text/plain
Content-Length: 16
Connection: keep-alive

hello from weft" "curl -i GET"

    # Two URLs in one curl: the second request reuses the connection.
    curl -sS -v "$url" "${url}again" >"$tmp/curl2.out" 2>"$tmp/curl2.err" || fail "curl keep-alive failed"
    [ "$(grep -c '^hello from weft$' "$tmp/curl2.out")" = 2 ] || fail "two bodies expected on one connection"
    grep -qi "re-using existing connection\|reusing existing connection" "$tmp/curl2.err" ||
        fail "curl did not reuse the connection (no keep-alive?)"

    code=$(curl -sS -o /dev/null -w '%{http_code}' -I "$url") || fail "curl HEAD failed"
    [ "$code" = 200 ] || fail "HEAD: status $code"
    body=$(curl -sS --http1.0 "$url") || fail "curl HTTP/1.0 failed"
    [ "$body" = "hello from weft" ] || fail "HTTP/1.0: body '$body'"
    code=$(curl -sS -o /dev/null -w '%{http_code}' -d 'a=1&b=2' "$url") || fail "curl POST failed"
    [ "$code" = 405 ] || fail "POST: status $code, not 405"
    echo "curl: GET, keep-alive, HEAD, HTTP/1.0 and POST (405): pass"
else
    echo "curl is not installed: its checks are skipped"
fi

if command -v wrk >/dev/null 2>&1; then
    wrk -t1 -c10 -d1s "$url" >"$tmp/wrk.out" 2>&1 || fail "wrk failed"
    grep -q "Requests/sec" "$tmp/wrk.out" || fail "wrk printed no Requests/sec"
    if grep -q "Socket errors\|Non-2xx" "$tmp/wrk.out"; then
        fail "wrk saw errors"
    fi
    echo "wrk: $(grep 'requests in' "$tmp/wrk.out" | sed 's/^ *//'), no errors: pass"
else
    echo "wrk is not installed: its check is skipped"
fi
stop_server 143

# http_get against a server that answers after 200 ms.
start_server http_server --port 0 --delay-ms 200
wait_port http_server "listening on http://127.0.0.1:"
$wrap "$dir/http_get" "http://127.0.0.1:$port/" >"$tmp/http_get.out" 2>"$tmp/http_get.err" ||
    fail "http_get exited with status $?"
stop_server 143
n=$(grep -c "^http://127.0.0.1:$port/ => 200\$" "$tmp/http_get.out")
[ "$n" = 20 ] || fail "http_get: $n answers with status 200, not 20"
seq=$(sed -n 's/^sequential: 10 requests in \([0-9.]*\) s$/\1/p' "$tmp/http_get.out")
conc=$(sed -n 's/^concurrent: 10 requests in \([0-9.]*\) s .*/\1/p' "$tmp/http_get.out")
[ -n "$seq" ] && [ -n "$conc" ] || fail "http_get: no 'sequential:' or 'concurrent:' line"
awk -v s="$seq" -v c="$conc" 'BEGIN { exit !(c * 3 < s) }' ||
    fail "http_get: concurrent $conc s is not under a third of sequential $seq s"
echo "http_get: 20 x 200, sequential $seq s, concurrent $conc s: pass"
