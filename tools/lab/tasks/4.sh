# shellcheck shell=bash
# Task 4 of the course: two clients at once, mesin2 a large file and mesin3 a message, to one
# server on mesin1 (task4); and the same against the course's own server, one client at a
# time (task4i), for contrast.

TASKS+=(4 4i)

# Task 4: mesin2 sends a large file while mesin3 sends a message, to one server.
# They overlap by construction: mesin3 starts only once mesin2's connection is
# established, and mesin2's link is shaped (LAB_RATE) so that its file takes about
# half a second, whatever the speed of the machine or of the server.
task4() {
    step "Task 4: two clients at once (mesin2 a large file, mesin3 a message) on port 32444"
    mark "task 4: two clients at once on port 32444"
    start_server 1 task4-server --port 32444
    two_clients 32444 task4
    note "The server serves both at once (one event loop): mesin3's echo came back while mesin2 was"
    note "still sending. The course's server would have left mesin3 waiting (task4i shows it)."
    stop_server
}

# Task 4 again, against the course's own server (one client at a time), for contrast:
# mesin3's handshake completes in the kernel's backlog, but its echo waits for mesin2.
task4i() {
    step "Task 4 against the course's server (one client at a time) on port 32434"
    mark "task 4, course server: one client at a time on port 32434"
    if ! command -v python3 >/dev/null; then
        warn "python3 is missing: no run against the course's server"
        return 0
    fi
    start_course_server 1 task4i-server 32434
    two_clients 32434 task4i
    note "The course's server accepts mesin3 only after mesin2 has left: mesin3's connection was"
    note "established by mesin1's kernel (the backlog of listen(1)), but its echo waited for mesin2."
    stop_server
}

# two_clients PORT NAME : mesin2 sends lab/large.bin and, once its connection is
# established, mesin3 a message, both to mesin1:PORT; both echoes must be verified.
two_clients() {
    local port=$1 name=$2 large=$LAB_DIR/large.bin i pid2 pid3 rc2=0 rc3=0 established=0 shaped=0
    temp_file "$large"
    # (not `yes | head`: with pipefail, yes's SIGPIPE would fail the step)
    head -c "$LAB_LARGE" <(yes 'INI ADALAH ISI FILE BESAR YANG DIKIRIM DARI MESIN2 KE MESIN1') >"$large"
    note "lab/large.bin: $LAB_LARGE bytes"
    if [[ $LAB_RATE != off ]]; then
        show 2 tc qdisc add dev eth1 root tbf rate "$LAB_RATE" burst 16kb latency 50ms
        if ip netns exec "$(ns_name 2)" tc qdisc add dev eth1 root tbf rate "$LAB_RATE" burst 16kb latency 50ms; then
            shaped=1
            note "mesin2's link now sends at most $LAB_RATE: its file takes a while, like over a slow network."
        else
            warn "cannot shape mesin2's eth1 (no tbf qdisc?): the two clients may not overlap"
        fi
    fi
    # mesin3's client is started first, held at a fifo: entering a namespace costs tens
    # of ms (more on a busy machine), and only an exec is left once mesin2 is established.
    local go=$LAB_DIR/.$name-go
    rm -f "$go"
    mkfifo "$go"
    temp_file "$go"
    lab_argv 3
    # shellcheck disable=SC2016 # $0 and $@ are the inner shell's
    timeout --kill-after=5 60 "${LAB_ARGV[@]}" sh -c 'read -r _ <"$0" && exec "$@"' "$go" \
        "$PROGJAR" client "$NET4.101" --port "$port" --message "PESAN DARI MESIN3" \
        >"$LOGS/$name-mesin3.log" 2>&1 </dev/null &
    pid3=$!
    BG_PIDS+=("$pid3")
    show 2 "$PROGJAR" client "$NET4.101" --port "$port" --file "$large" "&"
    lab_argv 2
    timeout --kill-after=5 60 "${LAB_ARGV[@]}" "$PROGJAR" client "$NET4.101" --port "$port" --file "$large" \
        >"$LOGS/$name-mesin2.log" 2>&1 </dev/null &
    pid2=$!
    BG_PIDS+=("$pid2")
    # Wait (at most 10 s) until mesin2's connection is established, then let mesin3 go.
    for ((i = 0; i < 200; i++)); do
        if [[ -n $(ss -N "$(ns_name 2)" -Htn state established "( dport = :$port )") ]]; then
            established=1
            break
        fi
        kill -0 "$pid2" 2>/dev/null || break
        sleep 0.02
    done
    ((established)) || warn "mesin2's connection was not seen established; starting mesin3 anyway"
    show 3 "$PROGJAR" client "$NET4.101" --port "$port" --message "PESAN DARI MESIN3" "&"
    note "(started as soon as mesin2's connection was established)"
    timeout 10 sh -c 'echo go >"$0"' "$go" || warn "mesin3's client did not wait for its start"
    drop_temp "$go"
    wait "$pid3" || rc3=$?
    note "mesin3's client finished (exit $rc3):"
    indent <"$LOGS/$name-mesin3.log"
    wait "$pid2" || rc2=$?
    note "mesin2's client finished (exit $rc2):"
    indent <"$LOGS/$name-mesin2.log"
    forget_pid "$pid2"
    forget_pid "$pid3"
    if ((rc2 == 0)); then ok "mesin2 client: echo verified (exit 0)"; else fail "mesin2 client exited $rc2"; fi
    if ((rc3 == 0)); then ok "mesin3 client: echo verified (exit 0)"; else fail "mesin3 client exited $rc3"; fi
    drop_temp "$large"
    if ((shaped)); then ip netns exec "$(ns_name 2)" tc qdisc del dev eth1 root; fi
}

task4_record() {
    # the ladder fails unless the capture shows the two connections open at once
    LADDER_CHECKS+=(--require-overlap "task 4:")
    LADDER_FAILS="the capture does not show task 4's two connections overlapping (see the timeline)"
    WIRESHARK_FILTERS+=("tcp.port == 32444")
}

task4i_record() { WIRESHARK_FILTERS+=("tcp.port == 32434"); }
