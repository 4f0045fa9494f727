# shellcheck shell=bash
# tools/lab/lib/machines.sh: the machines themselves. `up` builds the bridge and a namespace
# per machine (checked: no address on the host side, no route out), `down` removes all of it
# and every process in it, `status` shows it, `shell` opens a shell inside one machine.

write_etc() {
    local n=$1 dir
    dir=/etc/netns/$(ns_name "$n")
    mkdir -p "$dir"
    cat >"$dir/hosts" <<EOF
# The lab's /etc/hosts (written by tools/lab/lab; ip netns exec mounts it over /etc/hosts)
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
$NET4.101	mesin1
$NET4.102	mesin2
$NET4.103	mesin3
# IPv6 under their own names: with glibc's default order a name with both kinds of
# address is tried over IPv6 first, and the course's servers bind 0.0.0.0 (IPv4).
${NET6}:101	mesin1-v6
${NET6}:102	mesin2-v6
${NET6}:103	mesin3-v6
EOF
    # Like Docker's embedded resolver at 127.0.0.11, except that nothing answers:
    # the lab has no DNS server and no Internet. A lookup sends its query on lo
    # (see it with udp.port == 53) and fails at once with "port unreachable".
    cat >"$dir/resolv.conf" <<EOF
# The lab's /etc/resolv.conf (written by tools/lab/lab): nothing listens there.
nameserver 127.0.0.11
options timeout:1 attempts:1
EOF
}

# No address of any kind for an interface of the host namespace.
no_ipv6() { sysctl -qw "net.ipv6.conf.$1.disable_ipv6=1" 2>/dev/null || true; }

verify_up() {
    local n ns routes want
    [[ -z $(ip -o addr show dev "$BR") ]] || die "the bridge $BR has an address; it must have none"
    for n in "${MACHINES[@]}"; do
        [[ -z $(ip -o addr show dev "$(veth_name "$n")") ]] || die "$(veth_name "$n") has an address; it must have none"
    done
    for n in "${MACHINES[@]}"; do
        ns=$(ns_name "$n")
        routes=$(ip -n "$ns" -4 route show | sed 's/ *$//')
        want="$NET4.0/24 dev eth1 proto kernel scope link src $NET4.10$n"
        [[ $routes == "$want" ]] || die "$ns: unexpected IPv4 routes: $routes"
        ((HAVE_V6)) || continue
        [[ -z $(ip -n "$ns" -6 route show default) ]] || die "$ns: has an IPv6 default route"
        # (no grep -q on a pipe: with pipefail, ip's SIGPIPE would fail the check)
        routes=$(ip -n "$ns" -6 route show)
        if grep -v -q ' dev eth1 ' <<<"$routes"; then die "$ns: an IPv6 route not on eth1: $routes"; fi
        [[ $(ip -n "$ns" -6 addr show dev eth1) == *"${NET6}:10$n/64"* ]] || die "$ns: no IPv6 address"
    done
}

cmd_up() {
    need_root
    need_tools ip unshare flock sysctl
    lock
    local n ns veth fresh=1 owned_before=$OWN_LAB
    ((HAVE_V6)) || warn "this kernel has IPv6 off: the lab gets IPv4 addresses only"
    if [[ -f $STATE/made ]]; then
        fresh=0
    else
        # Refuse to adopt names someone else made: `down` would delete them.
        for n in "${MACHINES[@]}"; do
            if ns_exists "$(ns_name "$n")"; then
                die "a namespace $(ns_name "$n") exists that this tool did not make; remove it, or set LAB_TAG"
            fi
            if link_exists "$(veth_name "$n")"; then
                die "an interface $(veth_name "$n") exists that this tool did not make"
            fi
        done
        if link_exists "$BR"; then die "an interface $BR exists that this tool did not make"; fi
    fi
    # From here on, anything that fails takes the lab down (the EXIT trap).
    OWN_LAB=1
    mkdir -p "$STATE"
    if [[ ! -f $STATE/made ]]; then
        [[ -d /etc/netns ]] || echo yes >"$STATE/made-etc-netns"
        date +%s >"$STATE/made"
    fi

    if ! link_exists "$BR"; then
        ip link add name "$BR" type bridge
    fi
    no_ipv6 "$BR"
    ip addr flush dev "$BR"
    ip link set dev "$BR" up
    if command -v nmcli >/dev/null; then nmcli device set "$BR" managed no >/dev/null 2>&1 || true; fi

    for n in "${MACHINES[@]}"; do
        ns=$(ns_name "$n")
        veth=$(veth_name "$n")
        ns_exists "$ns" || ip netns add "$ns"
        ip -n "$ns" link set dev lo up
        if ! link_exists "$veth"; then
            ip link add name "$veth" type veth peer name eth1 netns "$ns"
        fi
        no_ipv6 "$veth"
        ip link set dev "$veth" master "$BR"
        ip link set dev "$veth" up
        # One MTU-sized TCP segment per packet, as on a real wire: without this,
        # veth's segmentation offload shows 64 KB "segments" in the capture.
        ip -n "$ns" link set dev eth1 gso_max_segs 1 2>/dev/null || true
        ip -n "$ns" addr replace "$NET4.10$n/24" dev eth1
        if ((HAVE_V6)); then ip -n "$ns" addr replace "${NET6}:10$n/64" dev eth1 nodad; fi
        ip -n "$ns" link set dev eth1 up
        write_etc "$n"
        # For tests/lab.rs: make `up` fail half-way, to see that it cleans up.
        [[ ${LAB_TEST_FAIL_AT:-} != "mesin$n" ]] || die "failing after mesin$n on purpose (LAB_TEST_FAIL_AT)"
    done
    verify_up
    if [[ $(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null) == 1 ]] && command -v iptables >/dev/null &&
        [[ $(iptables -S FORWARD 2>/dev/null) == *'-P FORWARD DROP'* ]]; then
        warn "br_netfilter sends bridged frames through iptables, whose FORWARD policy is DROP"
        warn "(Docker does that): the machines may not reach each other. One way, undone by a reboot:"
        warn "  iptables -I FORWARD -i $BR -o $BR -j ACCEPT"
    fi
    if ((fresh)); then
        say "lab up: bridge $BR (no address); $(ns_name 1) $NET4.101, $(ns_name 2) $NET4.102, $(ns_name 3) $NET4.103 on eth1, no other route"
    else
        say "lab already up (checked): bridge $BR, $(ns_name 1), $(ns_name 2), $(ns_name 3)"
    fi
    # `up` alone leaves the lab up; a caller that owns the lab (replay) keeps owning it.
    OWN_LAB=$owned_before
}

cmd_down() {
    need_root
    lock
    local n ns veth pids left=0
    stop_captures
    if [[ ! -f $STATE/made ]]; then
        for n in "${MACHINES[@]}"; do
            if ns_exists "$(ns_name "$n")"; then
                warn "namespace $(ns_name "$n") was not made by this tool ($STATE/made is missing): left alone"
                left=1
            fi
        done
        ((left)) || say "lab is down (nothing to remove)"
        return 0
    fi
    if [[ -f $STATE/tcpdump.pids ]]; then
        # Captures of this lab started by another lab command (e.g. `capture` in another
        # terminal); a pid is only killed while it still is a tcpdump of ours.
        local p ours=()
        while read -r p; do
            if [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") == *" tcpdump "*" -w "* ]]; then ours+=("$p"); fi
        done <"$STATE/tcpdump.pids"
        kill_pids "${ours[@]}"
    fi
    for n in "${MACHINES[@]}"; do
        ns=$(ns_name "$n")
        if ns_exists "$ns"; then
            # Every process in a lab namespace was started by the lab (replay, shell, capture).
            mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
            if ((${#pids[@]})); then
                note "stopping ${#pids[@]} process(es) still in $ns: ${pids[*]}"
                kill_pids "${pids[@]}"
            fi
            ip netns del "$ns"
        fi
        # (deleting the namespace deletes eth1 and so its veth peer, a moment later)
        ip link del dev "$(veth_name "$n")" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
    ip link del dev "$BR" 2>/dev/null || true
    local i gone=0
    for ((i = 0; i < 100 && !gone; i++)); do # at most 5 s
        gone=1
        for n in "${MACHINES[@]}"; do link_exists "$(veth_name "$n")" && gone=0; done
        link_exists "$BR" && gone=0
        ((gone)) || sleep 0.05
    done
    ((gone)) || die "the bridge $BR or its veths are still there after 5 s"
    if [[ -f $STATE/made-etc-netns ]]; then rmdir /etc/netns 2>/dev/null || true; fi
    rm -rf "$STATE"
    OWN_LAB=0
    say "lab down: namespaces, bridge $BR, veths and /etc/netns entries removed"
}

cmd_shell() {
    need_root
    local m=${1:-}
    m=${m#mesin}
    [[ $m =~ ^[123]$ ]] || die "which machine? lab shell mesin1|mesin2|mesin3 (make lab-shell M=mesin2)"
    is_up || die "the lab is not up: run make lab-up (or tools/lab/lab up) first"
    say "mesin$m ($NET4.10$m): type exit to leave. progjar is on the PATH."
    in_lab "$m" env LAB_MACHINE="mesin$m" PATH="$(dirname "$PROGJAR"):$PATH" \
        bash --rcfile "$HERE/shellrc" -i || true
}

cmd_status() {
    local n ns procs
    if ! is_up; then
        say "lab is down"
        return 0
    fi
    say "bridge $BR: $(ip -br link show dev "$BR" | awk '{print $2}'), addresses: $(ip -o addr show dev "$BR" | wc -l)"
    for n in "${MACHINES[@]}"; do
        ns=$(ns_name "$n")
        say "$ns: $(ip -n "$ns" -br addr show dev eth1 | cut -d' ' -f2- | tr -s ' ')"
        ip -n "$ns" route show | sed 's/^/    route: /'
        procs=$(ip netns pids "$ns" | tr '\n' ' ')
        [[ -z $procs ]] || say "    processes: $procs"
    done
}
