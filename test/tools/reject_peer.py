#!/usr/bin/python3
"""test/tools/reject_peer.py - the sender of test/e2e/reject_reset.sh.

  reject_peer.py FAMILY IFACE SRC_MAC DST_MAC PORT

In namespace A: sends a fixed set of TCP segments (built with scapy) from
10.1.0.1 (fd00::1) to 10.1.0.2 (fd00::2), or to R2X_REJECT_DST if set,
port PORT, on IFACE, one at a time, and
prints every TCP frame that comes back, as `NAME HEX` (NAME: the segment it
answers, found by port; `other` for anything else). A segment marked
`reply` is sent, then its answer awaited; the others (no RST expected) are
sent and the next one follows. The last segment is a SYN whose answer ends
the run, so an answer to an earlier one has arrived by then (one veth, one
queue, in order). A missing answer is a failure (exit 1) after a timeout
only reached when something is broken.
"""
import os
import select
import socket
import sys
import time

os.environ.setdefault("SCAPY_USE_LIBPCAP", "no")
from scapy.layers.inet import IP, TCP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

TIMEOUT = 30  # only reached when something is broken
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4

OPTS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (12345, 0)),
        ("NOP", None), ("WScale", 7)]
# name, source port, TCP fields, payload, whether a RST is expected.
SEGMENTS = [
    ("syn", 40001, dict(flags="S", seq=1000), b"", True),
    ("syn_opts", 40002, dict(flags="S", seq=0xfffffff0, options=OPTS), b"",
     True),
    ("syn_data", 40003, dict(flags="S", seq=77), b"hello", True),
    ("ack_data", 40004, dict(flags="PA", seq=5000, ack=7000), b"x" * 20, True),
    ("fin", 40005, dict(flags="F", seq=9), b"", True),
    ("fin_ack", 40006, dict(flags="FA", seq=11, ack=22), b"", True),
    ("rst", 40007, dict(flags="R", seq=33), b"", False),
    ("rst_ack", 40008, dict(flags="RA", seq=44, ack=55), b"", False),
    ("syn_ack", 40009, dict(flags="SA", seq=66, ack=0x80000000,
                            options=OPTS), b"", True),
    ("urg_psh", 40010, dict(flags="PU", seq=3, urgptr=1), b"abc", True),
    ("ack_long", 40011, dict(flags="A", seq=1, ack=2), b"y" * 100, True),
    ("bad_sum", 40012, dict(flags="S", seq=5, chksum=0x1234), b"", False),
    ("last", 40099, dict(flags="S", seq=99), b"", True),
]


def main():
    family, iface, smac, dmac, port = sys.argv[1:6]
    port = int(port)
    v6 = family == "6"
    a, b = ("fd00::1", "fd00::2") if v6 else ("10.1.0.1", "10.1.0.2")
    b = os.environ.get("R2X_REJECT_DST", b)  # a host behind B (FORWARD)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                      socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    by_port = {sp: name for name, sp, _, _, _ in SEGMENTS}
    got = {}
    lines = []

    def receive(until):
        end = time.monotonic() + TIMEOUT
        while not until():
            left = end - time.monotonic()
            if left <= 0:
                return False
            if not select.select([s], [], [], left)[0]:
                continue
            data, addr = s.recvfrom(65536)
            if addr[2] == PACKET_OUTGOING:
                continue
            f = Ether(data)
            if TCP not in f:
                continue
            name = by_port.get(f[TCP].dport, "other")
            got[name] = got.get(name, 0) + 1
            lines.append("%s %s" % (name, data.hex()))
        return True

    for name, sport, fields, payload, reply in SEGMENTS:
        ip = IPv6(src=a, dst=b) if v6 else IP(src=a, dst=b, id=sport)
        frame = Ether(src=smac, dst=dmac) / ip / \
            TCP(sport=sport, dport=port, window=512, **fields) / payload
        s.send(bytes(frame))
        if reply and not receive(lambda: name in got):
            print("no answer to %s" % name, file=sys.stderr)
            return 1
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
