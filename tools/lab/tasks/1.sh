# shellcheck shell=bash
# Task 1 of the course: socket information (`progjar info`) on mesin1. Its DNS query goes to
# mesin1's lo, recorded apart.

TASKS+=(1)

task1() {
    step "Task 1: socket info on mesin1"
    mark "task 1: socket info on mesin1"
    run_in 1 "$LOGS/task1-info.log" "$PROGJAR" info
    note "The hostname is mesin1 and its address comes from the lab's /etc/hosts. The lab has no"
    note "Internet and no DNS server: the lookup of the remote host goes to 127.0.0.11 (where Docker's"
    note "resolver would be), on mesin1's lo, and fails at once. See it in lab/mesin1-lo.pcap (udp.port == 53)."
    ((RC < 124)) || fail "progjar info did not finish (status $RC)"
    run_in 1 "$LOGS/task1-info-mesin2.log" "$PROGJAR" info --remote mesin2
    note "A name inside the lab resolves (from /etc/hosts): mesin2 is $NET4.102."
    if ((RC == 0)); then ok "progjar info --remote mesin2"; else fail "progjar info --remote mesin2 exited $RC"; fi
}


task1_record() {
    record_lo 1 "task 1's DNS query"
    WIRESHARK_FILTERS+=("udp.port == 53")
}
