# shellcheck shell=bash
# tools/lab/lib/steps.sh: what a task is made of. Each command is printed as a student would
# type it on that machine, run there with a time bound, its output shown; servers are started
# and waited for, then stopped with SIGTERM; every check ends in ok or FAIL.

# show N CMD... : print what a student would type on machine N
show() {
    local n=$1
    shift
    local words=("$@")
    [[ ${words[0]} == "$PROGJAR" ]] && words[0]=progjar
    printf '\033[36mmesin%s#\033[0m %s\n' "$n" "${words[*]}"
}

indent() { sed 's/^/    | /'; }

# run_in N LOG CMD... : run CMD on machine N (bounded to 60 s), print its output; sets RC
run_in() {
    local n=$1 log=$2
    shift 2
    show "$n" "$@"
    RC=0
    lab_argv "$n"
    timeout --kill-after=5 60 "${LAB_ARGV[@]}" "$@" >"$log" 2>&1 </dev/null || RC=$?
    indent <"$log"
    note "exit status $RC"
}

# start_server N NAME ARGS... : start `progjar server ARGS` on machine N, wait for its
# `listening on` line (at most 10 s); sets SERVER_PID, SERVER_LOG
start_server() {
    local n=$1 name=$2
    shift 2
    show "$n" "$PROGJAR" server "$@"
    launch_server "$n" "$name" stdout '^listening on ' "$PROGJAR" server "$@"
}

# start_course_server N NAME PORT : the course's own Python server (one client at a
# time: tools/lab/course_server.py) on machine N, ready once it logs `waiting for a connection`
start_course_server() {
    local n=$1 name=$2 port=$3
    show "$n" python3 course_server.py "$port"
    launch_server "$n" "$name" stderr 'INFO:root:waiting for a connection' python3 "$HERE/course_server.py" "$port"
}

# launch_server N NAME stdout|stderr PATTERN CMD... : run CMD on machine N, wait (at
# most 10 s) for PATTERN in its stdout or stderr; sets SERVER_PID, SERVER_LOG
launch_server() {
    local n=$1 name=$2 where=$3 pattern=$4 i out watch
    shift 4
    out=$LOGS/$name.out
    SERVER_LOG=$LOGS/$name.log
    : >"$out"
    : >"$SERVER_LOG"
    watch=$out
    [[ $where == stdout ]] || watch=$SERVER_LOG
    lab_argv "$n" # (not in_lab: a function run with & is a subshell, and $! would be its pid)
    "${LAB_ARGV[@]}" "$@" >"$out" 2>"$SERVER_LOG" </dev/null &
    SERVER_PID=$!
    BG_PIDS+=("$SERVER_PID")
    for ((i = 0; i < 200; i++)); do
        if grep -q "$pattern" "$watch"; then
            indent <"$watch"
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server stopped: $(cat "$SERVER_LOG")"
        sleep 0.05
    done
    die "the server printed no '$pattern' line in 10 s: $(cat "$SERVER_LOG")"
}

# stop_server : SIGTERM, wait (at most 10 s), show its log and exit status
stop_server() {
    local i rc=0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" || rc=$?
    forget_pid "$SERVER_PID"
    note "server log (stderr), after SIGTERM it exited with status $rc:"
    local lines
    lines=$(wc -l <"$SERVER_LOG")
    if ((lines > 24)); then # the course's server logs every 32-byte piece
        { head -n 10 "$SERVER_LOG"; echo "... $((lines - 16)) more lines ..."; tail -n 6 "$SERVER_LOG"; } | indent
    else
        indent <"$SERVER_LOG"
    fi
    ((rc == 0)) || fail "the server did not exit cleanly on SIGTERM (status $rc)"
}

forget_pid() { # forget_pid PID : no longer ours to kill at exit
    local p keep=()
    for p in "${BG_PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    BG_PIDS=("${keep[@]}")
}

FAILURES=()
fail() { FAILURES+=("$*"); printf '  \033[31mFAIL: %s\033[0m\n' "$*"; }
ok() { printf '  \033[32mok: %s\033[0m\n' "$*"; }

mark() { echo "$(date +%s.%N) $*" >>"$STEPS"; }
