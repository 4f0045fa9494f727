# shellcheck shell=bash
# Task 5 of the course: the man in the middle. The course's `insecure_proxy.py` sits between the
# client and the real server and logs every piece it relays; the lesson is what a relay in the
# middle can read. Here `progjar proxy` runs on mesin3 (port 15000, the course's), relaying
# mesin2's client to the server on mesin1 (port 12000, the course's TLS server port); the bridge
# capture holds both legs, mesin2 <-> mesin3 and mesin3 <-> mesin1.
#
# Four runs, each one call of proxy_run below, each its own step (the page's sections):
#   plaintext    the message is in the capture, on both legs, and in the proxy's log.
#   TLS          TLS end to end through the plain relay: both legs carry only TLS records, and
#                the proxy's log shows none of the message.
#   intercepted  the proxy intercepts (--intercept-cert/--intercept-key, a certificate of a
#                CA of its own) and the client does not verify (--insecure, the course's
#                CERT_NONE): both legs are still encrypted, but the proxy's log shows the message.
#   refused      the same, but the client verifies (--ca with the real server's CA): it refuses
#                the proxy's certificate (exit 9); the capture shows the handshake and its alert.

TASKS+=(5)

PROXY_PORT=15000
REAL_PORT=12000
TASK5_MESSAGE="INI ADALAH DATA YANG DIKIRIM ABCDEFGHIJKLMNOPQ"

# proxy_run NAME LABEL SERVER_ARGS PROXY_ARGS CLIENT_ARGS : the server on mesin1:12000, the proxy
# on mesin3:15000 relaying to it, and the client on mesin2 sending the course's message through
# the proxy; each *_ARGS is one string of extra options. Sets RC (the client's exit status),
# PROXY_LOG (the proxy's log file) and CLIENT_LOG.
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
    CLIENT_LOG=$LOGS/$name-client.log
    # shellcheck disable=SC2086
    run_in 2 "$CLIENT_LOG" "$PROGJAR" client "$NET4.103" --port "$PROXY_PORT" $client_args
    note "The client talks to mesin3 only; mesin3 opened its own connection to mesin1 and passed the"
    note "bytes on, both ways, and then each end."
    stop_server # the proxy
    SERVER_PID=$server_pid SERVER_LOG=$server_log
    stop_server # the server
}

# proxy_read MESSAGE-SEEN : ok or FAIL on whether the proxy's log shows the message in the
# course's words (yes) or none of it (no).
proxy_read() {
    local seen=no
    if grep -qF "INFO:proxy:received data from client b'$TASK5_MESSAGE'" "$PROXY_LOG" &&
        grep -qF "INFO:proxy:sending to client b'$TASK5_MESSAGE'" "$PROXY_LOG"; then
        seen=yes
    elif grep -qF "${TASK5_MESSAGE:0:10}" "$PROXY_LOG"; then
        seen=partly
    fi
    case $1/$seen in
    yes/yes) ok "the proxy's log shows the message both ways, in the course's words" ;;
    no/no) ok "the proxy's log shows none of the message" ;;
    yes/*) fail "the proxy's log ($PROXY_LOG) does not show the message" ;;
    *) fail "the proxy's log ($PROXY_LOG) shows the message" ;;
    esac
}

task5() {
    task5_plain
    task5_certificates
    task5_tls
    task5_intercepted
    task5_refused
}

task5_plain() {
    proxy_run task5 plaintext "" "" ""
    if ((RC == 0)); then ok "echo verified through the proxy"; else fail "the client through the proxy exited $RC"; fi
    proxy_read yes
    note "Without TLS the relay in the middle reads every byte: the proxy's log, and the capture of"
    note "both legs (the page shows what each leg carried), hold the message in plain text."
}

# Two certificate directories: the real server's (mesin1) and the proxy's own (mesin3), each
# with a CA of its own, as an attacker's would be.
task5_certificates() {
    step "Task 5: certificates for the real server on mesin1, and for the proxy on mesin3"
    CERTS=$LAB_DIR/certs MITM=$LAB_DIR/mitm
    rm -rf "$CERTS" "$MITM" # progjar cert never writes over a file
    run_in 1 "$LOGS/task5-cert.log" "$PROGJAR" cert "$CERTS"
    ((RC == 0)) || fail "progjar cert $CERTS exited $RC"
    run_in 3 "$LOGS/task5-mitm-cert.log" "$PROGJAR" cert "$MITM"
    ((RC == 0)) || fail "progjar cert $MITM exited $RC"
    note "Two CAs: a client that trusts mesin1's (--ca $CERTS/ca.crt) does not trust mesin3's."
}

task5_tls() {
    proxy_run task5t TLS "--tls-cert $CERTS/server.crt --tls-key $CERTS/server.key" "" \
        "--tls --ca $CERTS/ca.crt"
    if ((RC == 0)); then ok "TLS echo verified through the proxy"; else fail "the TLS client exited $RC"; fi
    proxy_read no
    note "The plain relay passes TLS records it cannot read: its log shows them as bytes"
    note "(b'\\x16\\x03...', a handshake record), and the client checked mesin1's certificate."
}

task5_intercepted() {
    proxy_run task5i intercepted "--tls-cert $CERTS/server.crt --tls-key $CERTS/server.key" \
        "--intercept-cert $MITM/server.crt --intercept-key $MITM/server.key" "--tls --insecure"
    if ((RC == 0)); then ok "TLS echo verified through the intercepting proxy"; else fail "the TLS client exited $RC"; fi
    proxy_read yes
    note "Both legs are still encrypted, each with keys of its own, and the proxy holds both:"
    note "the client took mesin3's certificate without checking it (--insecure, the course's CERT_NONE)."
}

task5_refused() {
    proxy_run task5r refused "--tls-cert $CERTS/server.crt --tls-key $CERTS/server.key" \
        "--intercept-cert $MITM/server.crt --intercept-key $MITM/server.key" "--tls --ca $CERTS/ca.crt"
    if ((RC == 9)) && grep -q "the server's certificate is not signed by" "$CLIENT_LOG"; then
        ok "the client refused the proxy's certificate (exit 9): $(tail -n 1 "$CLIENT_LOG" | sed 's/^progjar: error: //')"
    else
        fail "the checking client exited $RC, not 9 with the certificate's sentence"
    fi
    proxy_read no
    if grep -q "it refused our certificate" "$PROXY_LOG"; then
        ok "the proxy's log says the client refused its certificate"
    else
        fail "the proxy's log ($PROXY_LOG) does not say the client refused"
    fi
    note "A client that checks the certificate against the CA it trusts is not fooled: it sends an"
    note "alert instead of its Finished, and not a byte of its message."
}

task5_record() {
    # the ladder fails unless the capture of each run shows what it should, on both legs
    LADDER_CHECKS+=(--require-text "task 5, plaintext:" "$TASK5_MESSAGE")
    LADDER_CHECKS+=(--require-encrypted "task 5, TLS:" "$TASK5_MESSAGE")
    LADDER_CHECKS+=(--require-encrypted "task 5, intercepted:" "$TASK5_MESSAGE")
    LADDER_CHECKS+=(--require-refusal "task 5, refused:" "$TASK5_MESSAGE")
    LADDER_FAILS="${LADDER_FAILS:+$LADDER_FAILS; }the capture does not show task 5's runs as they should be (text, encrypted, refused)"
    WIRESHARK_FILTERS+=("tcp.port == $PROXY_PORT || tcp.port == $REAL_PORT" "tls")
}
