# shellcheck shell=bash
# tools/lab/lib/common.sh: the lab's settings and names, its messages, the checks before a
# command, the lock, running a command inside machine N, and what every exit cleans up.
# Sourced by tools/lab/lab (which sets HERE and REPO first).

# cargo's target directory, wherever CARGO_TARGET_DIR or .cargo/config.toml put it.
[[ -n ${PROGJAR:-} ]] || PROGJAR=$("$REPO/tools/target-dir")/release/progjar
LAB_DIR=${LAB_DIR:-$REPO/lab}
LAB_TAG=${LAB_TAG:-}
LAB_LARGE=${LAB_LARGE:-1048576}
LAB_RATE=${LAB_RATE:-16mbit}
LAB_CAPTURE_MAX=${LAB_CAPTURE_MAX:-3600}

if [[ -n $LAB_TAG && ! $LAB_TAG =~ ^[a-z0-9]{1,6}$ ]]; then
    echo "lab: LAB_TAG must be 1 to 6 of [a-z0-9] (interface names are at most 15 characters)" >&2
    exit 2
fi

NET4=172.16.16     # mesinN = $NET4.10N/24
NET6=fd16:16:16:   # mesinN = ${NET6}:10N/64 (a ULA prefix, never routed anywhere)
MACHINES=(1 2 3)
BR=pjlab${LAB_TAG:+-$LAB_TAG}                 # the bridge, in the host namespace
STATE_ROOT=/run/progjar-lab
STATE=$STATE_ROOT/${LAB_TAG:-default}         # what this lab made, and the pids it started
LOCK=$STATE_ROOT/lock
# tools/lab/scale grows the lab by a mesin4 and says so here, so that `down` and
# `status` find it (and the HAProxy it runs there goes with the namespaces).
if [[ -f $STATE/machines ]]; then read -ra MACHINES <"$STATE/machines"; fi

HAVE_V6=0
if [[ -d /proc/sys/net/ipv6 ]]; then HAVE_V6=1; fi

ns_name() { echo "${LAB_TAG:+pj$LAB_TAG-}mesin$1"; }   # namespace of machine N
veth_name() { echo "$BR-m$1"; }                         # host end of machine N's eth1

OWN_LAB=0          # 1: this run brings the lab down when it stops, however it stops
HOLD_LOCK=0
CAPTURE_PIDS=()    # tcpdumps this run started
BG_PIDS=()         # servers/clients this run started in the lab
TEMP_FILES=()      # files a task made, removed at exit if it is stopped half-way

say() { printf '%s\n' "$*"; }
note() { printf '  \033[2m%s\033[0m\n' "$*"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
warn() { printf 'lab: warning: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

need_root() {
    [[ $(id -u) == 0 ]] || die "the lab needs root (namespaces, a bridge, tcpdump): run it with sudo"
}

need_tools() {
    local t missing=()
    for t in "$@"; do command -v "$t" >/dev/null || missing+=("$t"); done
    ((${#missing[@]} == 0)) || die "missing: ${missing[*]} (make deps installs tcpdump and iproute2)"
}

need_progjar() {
    [[ -x $PROGJAR ]] || die "no progjar binary at $PROGJAR: run 'make build' or set PROGJAR"
}

lock() {
    ((HOLD_LOCK)) && return 0
    mkdir -p "$STATE_ROOT"
    exec 9>"$LOCK"
    flock -w 120 9 || die "another lab command has held $LOCK for 2 minutes"
    HOLD_LOCK=1
}

unlock() {
    ((HOLD_LOCK)) || return 0
    flock -u 9
    exec 9>&-
    HOLD_LOCK=0
}

ns_exists() { [[ -e /run/netns/$1 ]]; }
link_exists() { ip link show dev "$1" >/dev/null 2>&1; }
is_up() { [[ -f $STATE/made ]] && ns_exists "$(ns_name 1)"; }

# Run a command inside machine N, with the hostname mesinN (its own UTS namespace),
# the lab's /etc/hosts and /etc/resolv.conf (ip netns exec bind-mounts /etc/netns/NS/*).
lab_argv() {
    # shellcheck disable=SC2016 # $0 and $@ are the inner shell's
    LAB_ARGV=(ip netns exec "$(ns_name "$1")" unshare --uts --
        sh -c 'echo "$0" >/proc/sys/kernel/hostname && exec "$@"' "mesin$1")
}
in_lab() {
    lab_argv "$1"
    shift
    "${LAB_ARGV[@]}" "$@"
}

kill_pids() { # kill_pids PID... : TERM, wait up to 2 s, then KILL
    local p i alive
    (($# == 0)) && return 0
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
        alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || return 0
        sleep 0.05
    done
    kill -KILL "$@" 2>/dev/null || true
}


# temp_file FILE : FILE goes at exit if the task that made it is stopped half-way;
# drop_temp FILE : remove it now, and forget it.
temp_file() { TEMP_FILES+=("$1"); }
drop_temp() {
    local f keep=()
    rm -f "$1"
    for f in "${TEMP_FILES[@]}"; do [[ $f == "$1" ]] || keep+=("$f"); done
    TEMP_FILES=("${keep[@]}")
}

on_exit() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    ((${#BG_PIDS[@]})) && kill_pids "${BG_PIDS[@]}"
    stop_captures
    ((${#TEMP_FILES[@]})) && rm -f "${TEMP_FILES[@]}"
    if ((OWN_LAB)); then
        ((rc)) && say "lab: stopping (status $rc); taking the lab down"
        cmd_down
    fi
    exit "$rc"
}
