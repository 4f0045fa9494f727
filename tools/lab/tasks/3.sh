# shellcheck shell=bash
# Task 3 of the course: a file from mesin2 through the server on mesin1:32444 and back.

TASKS+=(3)

task3() {
    step "Task 3: file transfer on port 32444"
    mark "task 3: file transfer on port 32444"
    printf 'Ini adalah isi file data.txt yang dikirim dari mesin2 ke mesin1.\n' >"$LAB_DIR/data.txt"
    note "lab/data.txt: $(wc -c <"$LAB_DIR/data.txt") bytes"
    start_server 1 task3-server --port 32444
    run_in 2 "$LOGS/task3-client.log" "$PROGJAR" client mesin1 --port 32444 --file "$LAB_DIR/data.txt"
    note "The name mesin1 resolves from the lab's /etc/hosts. The client half-closes after sending, so"
    note "neither side waits for the other to close first (the course report's hang)."
    if ((RC == 0)); then ok "file echo verified"; else fail "file client exited $RC"; fi
    stop_server
}

task3_record() { WIRESHARK_FILTERS+=("tcp.port == 32444"); }
