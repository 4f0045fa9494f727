# shellcheck shell=bash
# tools/lab/lib/capture.sh: tcpdump on the bridge (everything between the machines) or on a
# machine's lo, bounded in time and packets; `capture` records a session by hand until Ctrl-C.

# start_capture FILE N|bridge : tcpdump on the bridge (host side) or on machine N's lo.
start_capture() {
    local file=$1 where=$2 log pid i
    log=$file.log
    rm -f "$file" "$log"
    # --immediate-mode -U: hand over and write every packet at once (otherwise the
    # last packets can still sit in the kernel's buffer when tcpdump is stopped);
    # -B: 8 MiB of buffer; -Z root: Debian's tcpdump would otherwise drop to user
    # tcpdump and not be allowed to write into the repo; -s 1600: whole packets on
    # the bridge (MTU 1,500), so that each side's TLS records can be read whole
    # (tlsrec.py), the first 1,600 bytes of each on lo; -c: bounded.
    local args=(-i lo --immediate-mode -U -B 8192 -Z root -s 1600 -c 2000000 -w "$file")
    if [[ $where == bridge ]]; then
        args[1]=$BR
        timeout "$LAB_CAPTURE_MAX" tcpdump "${args[@]}" 2>"$log" &
    else
        timeout "$LAB_CAPTURE_MAX" ip netns exec "$(ns_name "$where")" tcpdump "${args[@]}" 2>"$log" &
    fi
    pid=$!
    CAPTURE_PIDS+=("$pid")
    mkdir -p "$STATE"
    echo "$pid" >>"$STATE/tcpdump.pids"
    for ((i = 0; i < 200; i++)); do # wait for "listening on" (at most 10 s)
        grep -q 'listening on' "$log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || die "tcpdump stopped: $(cat "$log")"
        sleep 0.05
    done
    die "tcpdump did not start listening in 10 s: $(cat "$log")"
}

stop_captures() {
    ((${#CAPTURE_PIDS[@]})) || return 0
    sleep 0.2 # the last ACKs of a closing connection are a few microseconds behind
    # timeout(1) passes TERM on to tcpdump, which then writes its counts and exits.
    kill_pids "${CAPTURE_PIDS[@]}"
    local p
    for p in "${CAPTURE_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    CAPTURE_PIDS=()
    rm -f "$STATE/tcpdump.pids"
}

cmd_capture() {
    need_root
    need_tools ip tcpdump timeout
    local brought=0
    if ! is_up; then
        OWN_LAB=1 # this capture makes the lab: Ctrl-C takes it down again
        cmd_up
        brought=1
        unlock
    fi
    mkdir -p "$LAB_DIR"
    local cap=$LAB_DIR/session.pcap n
    say "recording the bridge $BR into $cap, and each machine's lo into $LAB_DIR/session-mesinN-lo.pcap"
    start_capture "$cap" bridge
    for n in "${MACHINES[@]}"; do start_capture "$LAB_DIR/session-mesin$n-lo.pcap" "$n"; done
    say "work in other terminals: make lab-shell M=mesin1 (or tools/lab/lab shell mesin1); Ctrl-C here stops"
    ((brought)) && say "(the lab was brought up by this capture: Ctrl-C also takes it down)"
    trap 'CAPTURE_STOP=1' INT TERM
    CAPTURE_STOP=0
    # Bounded: tcpdump itself stops after LAB_CAPTURE_MAX seconds or 2,000,000 packets.
    while ((!CAPTURE_STOP)) && kill -0 "${CAPTURE_PIDS[0]}" 2>/dev/null; do
        wait "${CAPTURE_PIDS[0]}" 2>/dev/null || true
    done
    trap 'exit 130' INT
    trap 'exit 143' TERM
    echo
    stop_captures
    local args=("bridge=$cap")
    for n in "${MACHINES[@]}"; do args+=("mesin$n lo=$LAB_DIR/session-mesin$n-lo.pcap"); done
    ladder "${args[@]}" || true
    report "${args[@]}" || true
    say "saved: $cap and $LAB_DIR/session-mesin{1,2,3}-lo.pcap"
}
