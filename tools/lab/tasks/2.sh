# shellcheck shell=bash
# Task 2 of the course: the echo server on mesin1:10000, the client on mesin2 (first at
# localhost, refused on mesin2's own lo, recorded apart; then at mesin1).

TASKS+=(2)

task2() {
    step "Task 2: echo server on mesin1:10000, client on mesin2"
    mark "task 2: echo server on mesin1:10000, client on mesin2"
    start_server 1 task2-server --bind 0.0.0.0 --port 10000 --read-size 32
    note "--read-size 32 reproduces the course server's recv(32): a 46-byte message is echoed as 32 + 14."
    run_in 2 "$LOGS/task2-client-localhost.log" "$PROGJAR" client localhost --port 10000
    note "Inside mesin2, localhost is mesin2's own lo, where nothing listens on 10000: the kernel answers"
    note "the SYN with RST (Connection refused). That RST never reaches the bridge: it is in"
    note "lab/mesin2-lo.pcap, not in lab/capture.pcap."
    if ((RC == 3)) && grep -q "$NET4.101" "$LOGS/task2-client-localhost.log"; then
        ok "refused (exit 3) with the hint to use $NET4.101"
    else
        fail "expected exit 3 and a hint naming $NET4.101, got exit $RC"
    fi
    run_in 2 "$LOGS/task2-client.log" "$PROGJAR" client "$NET4.101" --port 10000
    note "Through the bridge: SYN, SYN-ACK, ACK, the 46 bytes, the echo, FIN both ways (ladder below)."
    if ((RC == 0)); then ok "echo verified"; else fail "client to $NET4.101 exited $RC"; fi
    stop_server
}


task2_record() {
    record_lo 2 "task 2's localhost attempt"
    WIRESHARK_FILTERS+=("tcp.port == 10000")
}
