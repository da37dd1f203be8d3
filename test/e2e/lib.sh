# test/e2e/lib.sh - shared by the end-to-end scripts (sourced, not run).
#
# Builds the talk's demo network in namespaces of its own and tears it down
# in a trap, whatever happens:
#
#   namespace A                         namespace B
#   veth-a 10.1.0.1/24  <--- veth --->  veth-b 10.1.0.2/24  (XDP here)
#
# Nothing outside the two namespaces is touched: no host interface, route or
# firewall. The scripts run in a private mount namespace with a bpffs of
# their own on /sys/fs/bpf and a tmpfs of their own on /run/netns, so
# rule2xdp's pins and the namespace names never mix with the host's, and
# vanish with the script even if it is killed.
#
# rule2xdp runs in B through `nsenter --net`, which switches only the
# network namespace and keeps our bpffs, so its convenience pins land in the
# test's private bpffs and can be checked. (Under `ip netns exec`, which
# gives its command a mount namespace and a /sys of its own, the program
# stays attached all the same: netlink_attach.sh tests that.)

R2X_NAME=${R2X_NAME:-$(basename "$0")}
R2X_PIDS=()
R2X_NETNS_INODES=() # of every namespace made, for their lock files
NS_A=
NS_B=
R2X_MORE_NS=() # made by r2x_more_netns, deleted by the cleanup
TMP=

# How long a wait for something that must happen may take before the test
# fails. Generous: it is reached only when something is broken, never on a
# merely busy machine, and every wait returns as soon as its event happens.
R2X_WAIT_S=${R2X_WAIT_S:-60}

say() { printf '%s\n' "$*"; }

# r2x_reaped PID: PID was waited for; the cleanup must not signal it again
# (the number may belong to another process by then).
r2x_reaped() {
  local keep=() p
  for p in "${R2X_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  R2X_PIDS=("${keep[@]}")
}
die() {
  printf '%s: FAIL: %s\n' "$R2X_NAME" "$*" >&2
  exit 1
}

# Re-runs the calling script in a private mount namespace (same PID, so the
# marker below recognises the second run).
r2x_private_mounts() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, XDP, bpffs)"
  if [ "${R2X_E2E_MNTNS:-}" != "$$" ]; then
    command -v unshare >/dev/null || die "unshare (util-linux) is missing"
    R2X_E2E_MNTNS=$$ exec unshare --mount --propagation private -- \
      bash "$0" "$@"
  fi
  mount -t bpf -o mode=0700 bpf /sys/fs/bpf ||
    die "cannot mount a private bpffs on /sys/fs/bpf"
  # `ip netns add` names a namespace by bind-mounting it on a file in
  # /run/netns. On a private tmpfs, the host never sees half-made entries
  # and a killed run leaves no files behind.
  mkdir -p /run/netns
  mount -t tmpfs -o mode=0755,size=1m r2x-netns /run/netns ||
    die "cannot mount a private /run/netns"
}

# Paths of the binaries under test: --rule2xdp PATH and --tools DIR, or the
# default build directory.
r2x_find_tools() {
  local root
  root=$(cd "$(dirname "$0")/../.." && pwd)
  R2X=${R2X:-$root/build/rule2xdp}
  TOOLS=${TOOLS:-$root/build/test/e2e}
  SEND=$TOOLS/udp_send
  SINK=$TOOLS/udp_sink
  local f
  for f in "$R2X" "$SEND" "$SINK"; do
    [ -x "$f" ] || die "$f is missing: build first (cmake --build build)"
  done
}

in_a() { ip netns exec "$NS_A" "$@"; }
in_b() { ip netns exec "$NS_B" "$@"; }
# rule2xdp in B's network namespace, in our mount namespace (see above).
r2x_b() { nsenter --net="/run/netns/$NS_B" -- "$R2X" "$@"; }

# r2x_netns_add NAME: `ip netns add NAME`, remembering its inode so the
# cleanup removes the lock files rule2xdp makes for it under /run/rule2xdp
# (named after the namespace's inode; /run is the host's).
r2x_netns_add() {
  ip netns add "$1" || die "cannot create namespace $1"
  R2X_NETNS_INODES+=("$(stat -L -c %i "/run/netns/$1")")
}

# r2x_forget_locks: removes the lock files of the namespaces made here.
r2x_forget_locks() {
  local ino
  for ino in "${R2X_NETNS_INODES[@]}"; do
    rm -f /run/rule2xdp/net"$ino"-if*.lock
  done
  rmdir /run/rule2xdp 2>/dev/null || true
}

r2x_cleanup() {
  local rc=$? pid
  set +e
  trap - EXIT
  for pid in "${R2X_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${R2X_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [ -n "$NS_B" ] && [ -e "/run/netns/$NS_B" ] &&
    [ -n "$(r2x_xdp_prog_id 2>/dev/null)" ]; then
    r2x_b --unload veth-b >/dev/null 2>&1
  fi
  [ -n "$NS_A" ] && ip netns del "$NS_A" 2>/dev/null
  [ -n "$NS_B" ] && ip netns del "$NS_B" 2>/dev/null
  local ns
  for ns in "${R2X_MORE_NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
  r2x_forget_locks
  rm -rf /sys/fs/bpf/rule2xdp 2>/dev/null
  [ -n "$TMP" ] && rm -rf "$TMP"
  exit "$rc"
}

# Creates A and B with unique names, the veth pair, addresses, and static
# neighbour entries so no datagram waits for (or is lost to) ARP.
r2x_make_network() {
  local run="r2x-$$-$RANDOM"
  trap r2x_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  TMP=$(mktemp -d /tmp/r2x-e2e.XXXXXX)
  NS_A=$run-a
  r2x_netns_add "$NS_A"
  NS_B=$run-b
  r2x_netns_add "$NS_B"
  # Created directly inside the namespaces: never a host interface.
  ip link add veth-a netns "$NS_A" type veth peer name veth-b netns "$NS_B" ||
    die "cannot create the veth pair"
  local ns
  for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
      net.ipv6.conf.default.disable_ipv6=1 >/dev/null
    ip -n "$ns" link set lo up
  done
  ip -n "$NS_A" addr add 10.1.0.1/24 dev veth-a
  ip -n "$NS_B" addr add 10.1.0.2/24 dev veth-b
  ip -n "$NS_A" link set veth-a up
  ip -n "$NS_B" link set veth-b up
  local mac_a mac_b
  mac_a=$(ip -n "$NS_A" -br link show veth-a | awk '{print $3}')
  mac_b=$(ip -n "$NS_B" -br link show veth-b | awk '{print $3}')
  ip -n "$NS_A" neigh replace 10.1.0.2 lladdr "$mac_b" dev veth-a nud permanent
  ip -n "$NS_B" neigh replace 10.1.0.1 lladdr "$mac_a" dev veth-b nud permanent
  # veth would otherwise hand B half-done checksums (see docs/brief).
  in_a ethtool -K veth-a tx off >/dev/null 2>&1 ||
    die "cannot turn off checksum offload on veth-a"
}

# r2x_more_netns VAR: one more namespace, beside A and B (after
# r2x_make_network), named after this run; its name into VAR. IPv6 off, lo
# up; the cleanup deletes it (and with it every interface in it). Joined to
# the others only by veth pairs the caller creates inside the namespaces.
r2x_more_netns() {
  local name="${NS_A%-a}-${#R2X_MORE_NS[@]}x"
  [ -n "$NS_A" ] || die "internal: r2x_more_netns before r2x_make_network"
  r2x_netns_add "$name"
  R2X_MORE_NS+=("$name")
  ip netns exec "$name" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
    net.ipv6.conf.default.disable_ipv6=1 >/dev/null
  ip -n "$name" link set lo up
  printf -v "$1" '%s' "$name"
}

# r2x_start_sink NAME PORT [udp_sink options]: starts a sink in B and returns
# once its socket is bound. Sets SINK_PID_<NAME>; output in $TMP/NAME.out.
r2x_start_sink() {
  local name=$1 port=$2 fd pid
  shift 2
  mkfifo "$TMP/$name.ready"
  exec {fd}<>"$TMP/$name.ready" # read-write: opening never blocks
  # Not through in_b: `$!` must be the sink itself (ip execs it), not a
  # subshell running a function, or signals and `wait` miss it.
  ip netns exec "$NS_B" "$SINK" --ready "$TMP/$name.ready" "$@" \
    10.1.0.2 "$port" >"$TMP/$name.out" 2>&1 &
  pid=$!
  R2X_PIDS+=("$pid")
  if ! read -r -t "$R2X_WAIT_S" -u "$fd" _; then
    exec {fd}<&-
    die "sink $name on :$port did not start: $(cat "$TMP/$name.out")"
  fi
  exec {fd}<&-
  printf -v "SINK_PID_$name" '%s' "$pid"
}

# r2x_stop_sink NAME: stops a sink if it is still running. (Not in a $(...):
# only this shell can wait for its children.)
r2x_stop_sink() {
  local var="SINK_PID_$1"
  kill -TERM "${!var}" 2>/dev/null || true
  wait "${!var}" 2>/dev/null || true
  r2x_reaped "${!var}"
}

# r2x_wait_sink NAME: waits for a sink to stop by itself (--count, --quiet-ms
# or --timeout-ms, so this is bounded).
r2x_wait_sink() {
  local var="SINK_PID_$1"
  wait "${!var}" 2>/dev/null || true
  r2x_reaped "${!var}"
}

# r2x_sink_count NAME: prints the count of a stopped sink.
r2x_sink_count() {
  local n
  n=$(awk '/^received/ {print $2}' "$TMP/$1.out")
  if grep -q '^socket overflow' "$TMP/$1.out"; then
    die "sink $1 dropped datagrams in its socket: $(cat "$TMP/$1.out")"
  fi
  [ -n "$n" ] || die "sink $1 printed no count: $(cat "$TMP/$1.out")"
  printf '%s\n' "$n"
}

# r2x_send PORT COUNT [udp_send options]: sends from A, prints the count sent.
r2x_send() {
  local port=$1 count=$2 out
  shift 2
  out=$(in_a "$SEND" "$@" 10.1.0.2 "$port" "$count") ||
    die "udp_send to :$port failed: $out"
  printf '%s\n' "${out#sent }"
}

# r2x_fence PORT COUNT: COUNT datagrams to B's PORT (one no rule drops)
# through a sink; returns once they all arrived, so every datagram sent
# before them met the program.
R2X_FENCES=0
r2x_fence() {
  R2X_FENCES=$((R2X_FENCES + 1))
  r2x_start_sink fence$R2X_FENCES "$1" --count "$2" --timeout-ms $((R2X_WAIT_S * 1000))
  [ "$(r2x_send "$1" "$2")" = "$2" ] || die "send to :$1"
  r2x_wait_sink fence$R2X_FENCES
  [ "$(r2x_sink_count fence$R2X_FENCES)" = "$2" ] || die "datagrams to :$1 (accepted) lost"
}

# r2x_xdp_prog_id: the id of the XDP program on veth-b, empty if none.
r2x_xdp_prog_id() {
  ip -n "$NS_B" -d link show dev veth-b |
    sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p'
}

# r2x_rule_packets PATTERN: the packet count of the --stats line matching
# PATTERN (an awk regex), empty if there is none.
r2x_rule_packets() {
  r2x_b --stats veth-b | awk -v pat="$1" '$0 ~ pat {print $1; exit}'
}

r2x_link_stats() {
  say "--- veth statistics (A, then B):"
  ip -n "$NS_A" -s link show veth-a
  ip -n "$NS_B" -s link show veth-b
}

# r2x_wait_until DESCRIPTION CMD...: polls CMD until it succeeds; fails the
# test with DESCRIPTION if it has not after R2X_WAIT_S seconds. For events
# nothing can be blocked on (a counter reaching a value, a file line).
r2x_wait_until() {
  local what=$1 end=$((SECONDS + R2X_WAIT_S))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || die "$what: not within ${R2X_WAIT_S}s"
    sleep 0.05
  done
}

# r2x_start NAME NS CMD...: a background peer in namespace NS (such as
# test/tools/nat_peer.py) that prints "ready" once it can receive; returns
# then. Its output goes to $TMP/NAME.out. r2x_waitfor NAME waits for it to
# end and fails the test if it failed; r2x_stop NAME ends it (SIGTERM: the
# peers then count what is queued, print their summary and exit 0).
r2x_start() {
  local name=$1 ns=$2 pid
  shift 2
  ip netns exec "$ns" "$@" >"$TMP/$name.out" 2>&1 &
  pid=$!
  R2X_PIDS+=("$pid")
  printf -v "PID_$name" '%s' "$pid"
  local end=$((SECONDS + R2X_WAIT_S))
  until grep -q '^ready' "$TMP/$name.out" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      grep -q '^ready' "$TMP/$name.out" 2>/dev/null && break # ready, then done
      die "$name ended before it was ready: $(cat "$TMP/$name.out")"
    fi
    [ "$SECONDS" -lt "$end" ] || die "$name did not start: $(cat "$TMP/$name.out")"
    sleep 0.05
  done
}
r2x_waitfor() {
  local v="PID_$1" rc=0
  wait "${!v}" || rc=$?
  r2x_reaped "${!v}"
  [ "$rc" = 0 ] || die "$1 failed: $(cat "$TMP/$1.out")"
}
r2x_stop() {
  local v="PID_$1"
  kill -TERM "${!v}" 2>/dev/null || true
  r2x_waitfor "$1"
}
