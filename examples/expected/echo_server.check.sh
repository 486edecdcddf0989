# The check of examples/echo_server.c and examples/echo_client.c (run as
# `sh echo_server.check.sh EXAMPLES_DIR` by CTest): the server on port 0,
# two clients one after the other, then SIGTERM, which the server answers
# by closing and exiting with 143.
. "$(dirname "$0")/net_check.sh"

start_server echo_server 0
wait_port echo_server "Serving on 127.0.0.1:"

$wrap "$dir/echo_client" "$port" >"$tmp/client1.out" 2>"$tmp/client1.err" ||
    fail "echo_client exited with status $?"
same "$tmp/client1.out" "Send: 'Hello World!'
Received: 'Hello World!'
Close the connection" "the first client's output"

$wrap "$dir/echo_client" "$port" "second message" >"$tmp/client2.out" 2>"$tmp/client2.err" ||
    fail "echo_client exited with status $?"
same "$tmp/client2.out" "Send: 'second message'
Received: 'second message'
Close the connection" "the second client's output"

stop_server 143
sed "s/:$port\$/:PORT/" "$tmp/echo_server.out" >"$tmp/server.txt"
same "$tmp/server.txt" "Serving on 127.0.0.1:PORT
Received 'Hello World!' from 127.0.0.1
Send: 'Hello World!'
Close the connection
Received 'second message' from 127.0.0.1
Send: 'second message'
Close the connection" "the server's output"
echo "echo_server and echo_client: pass"
