#!/usr/bin/env bash
# Runs an MPI program on two "hosts": two Linux network namespaces joined by a veth pair,
# each with its own host name. Open MPI's mpirun starts in the first; its remote-shell
# agent is a script that starts the remote daemon inside the second. Ranks are mapped by
# node (half on each host) and talk over TCP on the veth link only.
#
#   sudo dagger-mpi/tests/two_hosts.sh RANKS PROGRAM [ARGS...]
#
# Needs root (ip netns), Open MPI and util-linux's unshare. The namespaces, the link and
# the files this makes are removed at the end, whatever happens.
set -euo pipefail

ranks=$1
shift
program=$(readlink -f "$1")
shift

tag="dg$$"
ns_a="${tag}a"
ns_b="${tag}b"
work=$(mktemp -d)
subnet="10.231.$(( $$ % 200 + 20 )).0/24"
prefix=${subnet%.0/24}

cleanup() {
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    rm -rf "/etc/netns/$ns_a" "/etc/netns/$ns_b" "$work"
}
trap cleanup EXIT

ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add "${tag}x" type veth peer name "${tag}y"
ip link set "${tag}x" netns "$ns_a"
ip link set "${tag}y" netns "$ns_b"
ip -n "$ns_a" addr add "$prefix.1/24" dev "${tag}x"
ip -n "$ns_b" addr add "$prefix.2/24" dev "${tag}y"
for ns in "$ns_a" "$ns_b"; do
    ip -n "$ns" link set lo up
done
ip -n "$ns_a" link set "${tag}x" up
ip -n "$ns_b" link set "${tag}y" up

# Host names resolve inside the namespaces (ip netns exec mounts /etc/netns/NS/hosts).
for ns in "$ns_a" "$ns_b"; do
    mkdir -p "/etc/netns/$ns"
    printf '127.0.0.1 localhost\n%s.1 %s\n%s.2 %s\n' "$prefix" "$ns_a" "$prefix" "$ns_b" \
        >"/etc/netns/$ns/hosts"
done

# The remote-shell agent: `agent [options] HOST COMMAND...` runs COMMAND on HOST, that is
# inside HOST's namespace, under HOST's name.
cat >"$work/agent" <<AGENT
#!/bin/sh
while [ "\${1#-}" != "\$1" ]; do shift; done
host=\$1
shift
exec ip netns exec "\$host" unshare --uts sh -c "hostname \$host; \$*"
AGENT
chmod +x "$work/agent"
printf '%s slots=%s\n%s slots=%s\n' "$ns_a" "$(( (ranks + 1) / 2 ))" "$ns_b" "$(( ranks / 2 ))" >"$work/hosts"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ip netns exec "$ns_a" unshare --uts sh -c "hostname $ns_a; exec timeout 600 mpirun \
    -n $ranks --hostfile $work/hosts --map-by node \
    --mca plm_rsh_agent $work/agent \
    --mca btl tcp,self --mca btl_tcp_if_include $subnet --mca oob_tcp_if_include $subnet \
    --mca plm_rsh_no_tree_spawn 1 \
    $program $*"
