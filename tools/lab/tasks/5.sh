# shellcheck shell=bash
# Task 5 of the course: the man in the middle. The course's `insecure_proxy.py` sits between the
# client and the real server and logs every piece it relays; the lesson is what a relay in the
# middle can read. Here `progjar proxy` runs on mesin3 (port 15000, the course's), relaying
# mesin2's client to the server on mesin1 (port 12000, the course's TLS server port); the bridge
# capture holds both legs, mesin2 <-> mesin3 and mesin3 <-> mesin1.
#
# The runs of this task, each one call of proxy_run below:
#   task5    plaintext: the message is in the capture, on both legs, and in the proxy's log.
# The TLS runs come later, on the same machines and ports, as more calls of proxy_run (and
# `TASKS+=(...)` lines) in this file:
#   task5t   TLS end to end through a plain relay: both legs carry only ciphertext ("encrypted").
#   task5i   the proxy intercepts (--intercept-cert/--intercept-key) and the client does not
#            verify (--insecure, the course's CERT_NONE): the proxy's log shows the plaintext.
#   task5r   the same, but the client verifies (--ca): it refuses the proxy's certificate.

TASKS+=(5)

PROXY_PORT=15000
REAL_PORT=12000
TASK5_MESSAGE="INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ"

# proxy_run NAME LABEL SERVER_ARGS PROXY_ARGS CLIENT_ARGS : the server on mesin1:12000, the proxy
# on mesin3:15000 relaying to it, and the client on mesin2 sending the course's message through
# the proxy; each *_ARGS is one string of extra options. Sets RC (the client's exit status) and
# PROXY_LOG (the proxy's log file).
proxy_run() {
    local name=$1 label=$2 server_args=$3 proxy_args=$4 client_args=$5 server_pid server_log
    step "Task 5, $label: mesin2 -> proxy on mesin3:$PROXY_PORT -> server on mesin1:$REAL_PORT"
    mark "task 5, $label: the proxy on mesin3 between mesin2 and mesin1"
    # shellcheck disable=SC2086 # the *_ARGS strings are lists of options
    start_server 1 "$name-server" --port "$REAL_PORT" $server_args
    server_pid=$SERVER_PID server_log=$SERVER_LOG
    show 3 "$PROGJAR" proxy --to "$NET4.101:$REAL_PORT" $proxy_args
    # shellcheck disable=SC2086
    launch_server 3 "$name-proxy" stdout '^listening on ' "$PROGJAR" proxy --to "$NET4.101:$REAL_PORT" $proxy_args
    PROXY_LOG=$SERVER_LOG
    # shellcheck disable=SC2086
    run_in 2 "$LOGS/$name-client.log" "$PROGJAR" client "$NET4.103" --port "$PROXY_PORT" $client_args
    note "The client talks to mesin3 only; mesin3 opened its own connection to mesin1 and passed the"
    note "bytes on, both ways, and then each FIN."
    stop_server # the proxy
    SERVER_PID=$server_pid SERVER_LOG=$server_log
    stop_server # the server
}

task5() {
    proxy_run task5 plaintext "" "" ""
    if ((RC == 0)); then ok "echo verified through the proxy"; else fail "the client through the proxy exited $RC"; fi
    if grep -qF "INFO:proxy:received data from client b'$TASK5_MESSAGE'" "$PROXY_LOG" &&
        grep -qF "INFO:proxy:sending to client b'$TASK5_MESSAGE'" "$PROXY_LOG"; then
        ok "the proxy's log shows the message both ways, in the course's words"
    else
        fail "the proxy's log ($PROXY_LOG) does not show the message"
    fi
    note "Without TLS the relay in the middle reads every byte: the proxy's log, and the capture of"
    note "both legs (the page shows what each leg carried), hold the message in plain text."
}

task5_record() {
    # the ladder fails unless both legs of the plaintext run carried the message as text
    LADDER_CHECKS+=(--require-text "task 5, plaintext:" "$TASK5_MESSAGE")
    LADDER_FAILS="${LADDER_FAILS:+$LADDER_FAILS; }the capture does not show task 5's message on both legs"
    WIRESHARK_FILTERS+=("tcp.port == $PROXY_PORT || tcp.port == $REAL_PORT")
}
