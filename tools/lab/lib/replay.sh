# shellcheck shell=bash
# tools/lab/lib/replay.sh: replay tasks (tasks/*.sh) in a fresh lab under tcpdump, take it
# down, then draw the captures: text ladders (ladder.py) and the page (report.py).
#
# A task file defines `taskN` and registers it with `TASKS+=(N)`; it may define `taskN_record`
# (more captures, the ladder's checks and Wireshark filters of its own: record_lo,
# LADDER_CHECKS, WIRESHARK_FILTERS) and sets up and cleans up whatever else it needs itself.

ladder() { # ladder ARGS... : the diagrams, if python3 is here
    if command -v python3 >/dev/null; then
        python3 "$HERE/ladder.py" "$@" || return $?
    else
        warn "python3 is missing: no ladder diagrams (the captures are in $LAB_DIR)"
    fi
}

report() { # report ARGS... : the page LAB_DIR/report.html, if python3 is here
    if command -v python3 >/dev/null; then
        mkdir -p "$LAB_DIR"
        python3 "$HERE/report.py" --out "$LAB_DIR/report.html" "$@" || return $?
        say "the page: $LAB_DIR/report.html (open it in any browser)"
    else
        warn "python3 is missing: no report page (the captures are in $LAB_DIR)"
    fi
}

TASKS=()              # every task a tasks/*.sh file registered, in replay order
REPLAY_CAPS=()        # the capture files of this replay
REPLAY_LADDERS=()     # the same as ladder.py's LABEL=FILE arguments
LADDER_CHECKS=()      # more arguments for ladder.py: what the tasks require of the capture
LADDER_FAILS=""       # what it means when ladder.py says no
WIRESHARK_FILTERS=()  # the display filters that show the tasks' traffic

# record_lo N WHY : also record machine N's lo (what never reaches the bridge)
record_lo() {
    local file=$LAB_DIR/mesin$1-lo.pcap
    say "ip netns exec mesin$1 tcpdump -i lo -w $file   ($2)"
    start_capture "$file" "$1"
    REPLAY_CAPS+=("$file")
    REPLAY_LADDERS+=("mesin$1 lo=$file")
}

# replay_tasks TASK... : up, capture, run the tasks, down, draw the ladders.
replay_tasks() {
    need_root
    need_tools ip unshare tcpdump timeout ss
    need_progjar
    lock # held for the whole run: two replays of one lab would fight over ports
    OWN_LAB=1
    step "Building the lab"
    cmd_up
    mkdir -p "$LAB_DIR"
    LOGS=$LAB_DIR/logs
    mkdir -p "$LOGS"
    STEPS=$LAB_DIR/steps.txt
    : >"$STEPS"
    local cap=$LAB_DIR/${CAPTURE_NAME:-capture}.pcap t
    note "mesinN# CMD below means: ip netns exec mesinN CMD (with the hostname set to mesinN)"
    step "Recording"
    say "tcpdump -i $BR -w $cap          (the bridge: everything between the machines)"
    start_capture "$cap" bridge
    REPLAY_CAPS=("$cap")
    REPLAY_LADDERS=("bridge=$cap")
    for t in "$@"; do
        if declare -F "task${t}_record" >/dev/null; then "task${t}_record"; fi
    done
    for t in "$@"; do "task$t"; done
    step "Stopping"
    stop_captures
    local f
    for f in "${REPLAY_CAPS[@]}"; do
        note "$(basename "$f"): $(grep -m1 'packets captured' "$f.log" || echo '? packets captured')"
    done
    cmd_down
    unlock
    draw_replay "$cap"
}

# draw_replay CAPTURE : the ladders, the page and the summary of a replay; exit 1 on a FAIL
draw_replay() {
    step "Ladder diagrams (mesin1 on the right; times in ms from each connection's first packet)"
    ladder --steps "$STEPS" "${REPLAY_LADDERS[@]}" "${LADDER_CHECKS[@]}" ||
        fail "${LADDER_FAILS:-ladder.py could not read the captures}"
    step "Report"
    report --steps "$STEPS" "${REPLAY_LADDERS[@]}" || fail "no report page"
    step "Summary"
    say "captures: ${REPLAY_CAPS[*]}"
    say "logs:     $LOGS/"
    local filters
    filters=$(printf '%s\n' "${WIRESHARK_FILTERS[@]}" | awk 'NF && !seen[$0]++' | paste -sd, - | sed 's/,/, /g')
    say "open in Wireshark: wireshark $1${filters:+   (filters: $filters)}"
    if ((${#FAILURES[@]})); then
        say "$((${#FAILURES[@]})) problem(s):"
        printf '  - %s\n' "${FAILURES[@]}"
        exit 1
    fi
    say "every step did what the course expects"
}
