#!/bin/bash
# test/tc/talk_drop.sh RULE2XDP - the talk's tc drop example, end to end:
#   tc filter add dev eth0 parent ffff: protocol ip u32 \
#     match ip dst 10.1.0.2 match ip dport 1234 0xffff action drop
# compiled by rule2xdp --tc and loaded (XDP, native) on B's end of a veth
# pair in namespaces this script makes. A sends N UDP datagrams to
# 10.1.0.2:1234 and N to 10.1.0.2:4321; none may reach a socket on :1234,
# all must reach :4321, and --stats must count N packets on the filter.
# Everything is removed on exit (trap). Needs root; fails without it.
set -euo pipefail
R2X=${1:?usage: talk_drop.sh RULE2XDP}
N=50
A=r2xtcA$$; B=r2xtcB$$; IA=ta$$; IB=tb$$
cleanup() {
  # --unload also removes the lock file rule2xdp made for the interface.
  nsenter --net=/run/netns/"$B" "$R2X" --unload "$IB" >/dev/null 2>&1 || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL talk_drop: $*" >&2; exit 1; }

ip netns add "$A"; ip netns add "$B"
ip -n "$A" link add "$IA" type veth peer name "$IB" netns "$B"
ip -n "$A" addr add 10.1.0.1/24 dev "$IA"; ip -n "$B" addr add 10.1.0.2/24 dev "$IB"
ip -n "$A" link set "$IA" up; ip -n "$B" link set "$IB" up
ip -n "$A" link set lo up; ip -n "$B" link set lo up
# veth leaves UDP checksums partial (CHECKSUM_PARTIAL), which XDP on the
# receiving veth does not preserve: send complete checksums, as a NIC would.
ip netns exec "$A" ethtool -K "$IA" tx off >/dev/null
# A static neighbour: no datagram waits for (or is lost to) ARP.
MACB=$(ip -n "$B" -o link show "$IB" | sed -n 's|.*link/ether \([0-9a-f:]*\).*|\1|p')
ip -n "$A" neigh replace 10.1.0.2 lladdr "$MACB" dev "$IA" nud permanent

nsenter --net=/run/netns/"$B" "$R2X" --load "$IB" --tc "filter add dev $IB parent ffff: protocol ip prio 1 u32 match ip dst 10.1.0.2 match ip dport 1234 0xffff action drop"

RES=$(mktemp)
READY=/dev/shm/r2xtc-ready-$$
ip netns exec "$B" python3 - "$N" "$READY" >"$RES" <<'PY' &
import socket, sys
n = int(sys.argv[1])
socks = []
for port in (1234, 4321):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.1.0.2", port)); s.setblocking(False); socks.append(s)
open(sys.argv[2], "w").close()
got = [0, 0]
import select, time
# Read whatever arrives on either socket until :4321 has all N and 0.3 s
# passed with nothing more (bounded: 10 s). select() waits on both at once:
# waiting on each in turn cost 0.2 s per datagram on the empty :1234.
deadline = time.time() + 10
while time.time() < deadline:
    ready, _, _ = select.select(socks, [], [], 0.3)
    for s in ready:
        while True:
            try:
                s.recv(2048)
            except BlockingIOError:
                break
            got[socks.index(s)] += 1
    if not ready and got[1] >= n:
        break
print(got[0], got[1])
PY
RX=$!
for _ in $(seq 100); do [ -e "$READY" ] && break; sleep 0.05; done
[ -e "$READY" ] || fail "the receiver did not start"
rm -f "$READY"
ip netns exec "$A" python3 - "$N" <<'PY'
import socket, sys
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(n):
    s.sendto(b"x" * 18, ("10.1.0.2", 1234))
    s.sendto(b"x" * 18, ("10.1.0.2", 4321))
PY
wait $RX || fail "the receiver failed"
read -r GOT1234 GOT4321 <"$RES"; rm -f "$RES"
[ "$GOT1234" = 0 ] || fail "$GOT1234 datagrams reached :1234 (want 0)"
[ "$GOT4321" = "$N" ] || fail "$GOT4321 datagrams reached :4321 (want $N)"
STATS=$(nsenter --net=/run/netns/"$B" "$R2X" --stats "$IB")
echo "$STATS"
PKTS=$(echo "$STATS" | awk '/match 0a010002/ {print $1; exit}')
[ "${PKTS:-x}" = "$N" ] || fail "the filter counted ${PKTS:-nothing}, want $N"
echo "talk_drop: sent $N to :1234 and $N to :4321; the filter dropped $PKTS"
