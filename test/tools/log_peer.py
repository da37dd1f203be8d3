#!/usr/bin/python3
"""test/tools/log_peer.py - the sender of test/e2e/log_lines.sh.

  log_peer.py FAMILY IFACE SRC_MAC DST_MAC [REPEAT | odd]

In namespace A: sends a fixed list of frames (built with scapy, every field
fixed, so two runs send the same bytes) from 10.1.0.1 (fd00::1) to 10.1.0.2
(fd00::2), or to R2X_LOG_DST if set (a host behind B), on IFACE, REPEAT times (default 1), and prints how many it sent.
The frames cover what the kernel's LOG line prints: TCP with options,
sequence numbers and unusual flags, UDP, ICMP echo, an ICMP error quoting a
UDP datagram (and one quoting TCP), IPv4 options, TOS, DF; IPv6 TCP, UDP,
ICMPv6 echo and an ICMPv6 error, and headers cut short. `odd` sends instead two UDP frames whose
line XDP does not reproduce: a fragment (IPv4 MF; IPv6 a fragment header)
and an 802.1Q-tagged frame.
"""
import os
import socket
import sys

os.environ.setdefault("SCAPY_USE_LIBPCAP", "no")
from scapy.layers.inet import ICMP, IP, IPOption_NOP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoRequest,  # noqa
                                IPv6, IPv6ExtHdrFragment)
from scapy.layers.l2 import Dot1Q, Ether  # noqa: E402

ETH_P_ALL = 0x0003
OPTS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (12345, 0)),
        ("NOP", None), ("WScale", 7)]


def frames4(a, b):
    quoted = IP(src=b, dst=a, id=7, ttl=9) / UDP(sport=53, dport=40000) / \
        b"qqqq"
    quoted_tcp = IP(src=b, dst=a, id=8, flags="DF") / \
        TCP(sport=22, dport=40001, flags="S", seq=77, options=OPTS)
    return [
        IP(src=a, dst=b, id=4242, tos=0x10, flags="DF") /
        TCP(sport=40001, dport=7777, flags="S", seq=1000, window=64240,
            options=OPTS),
        IP(src=a, dst=b, id=4243, tos=0xb8, ttl=3) /
        TCP(sport=40002, dport=7777, flags="PAUEC", seq=5, ack=6, urgptr=2,
            window=512) / b"data",
        IP(src=a, dst=b, id=4244, options=[IPOption_NOP()] * 4) /
        TCP(sport=40003, dport=7777, flags="A", seq=1, ack=2, window=1,
            reserved=3),
        IP(src=a, dst=b, id=4245) / UDP(sport=5353, dport=7778) / b"hello",
        IP(src=a, dst=b, id=4246, tos=0x02) / ICMP(type=8, id=99, seq=3) /
        b"ping",
        IP(src=a, dst=b, id=4247) / ICMP(type=3, code=3) / quoted,
        IP(src=a, dst=b, id=4248) / ICMP(type=3, code=4, nexthopmtu=1400) /
        quoted_tcp,
        IP(src=a, dst=b, id=4249) / ICMP(type=11, code=0) / quoted,
        # Cut short: the kernel prints INCOMPLETE [N bytes].
        IP(src=a, dst=b, id=4250, proto=17) / b"\x13\x89\x1e\x62",
        IP(src=a, dst=b, id=4251) / ICMP(type=3, code=1) / b"\x45\x00",
    ]


def frames6(a, b):
    quoted = IPv6(src=b, dst=a, hlim=5) / UDP(sport=53, dport=40000)
    return [
        IPv6(src=a, dst=b, tc=0x28, fl=0x12345) /
        TCP(sport=40001, dport=7777, flags="S", seq=1000, options=OPTS),
        IPv6(src=a, dst=b) / UDP(sport=5353, dport=7778) / b"hello",
        IPv6(src=a, dst=b, hlim=7) / ICMPv6EchoRequest(id=5, seq=6),
        IPv6(src=a, dst=b) / ICMPv6DestUnreach(code=4) / quoted,
        IPv6(src=a, dst=b, nh=17) / b"\x13\x89\x1e",
    ]


def odd(family, a, b, smac, dmac):
    udp = UDP(sport=5353, dport=7778) / b"odd"
    if family == "6":
        return [Ether(src=smac, dst=dmac) / IPv6(src=a, dst=b) /
                IPv6ExtHdrFragment(m=1, id=9) / udp,
                Ether(src=smac, dst=dmac) / Dot1Q(vlan=5) /
                IPv6(src=a, dst=b) / udp]
    return [Ether(src=smac, dst=dmac) / IP(src=a, dst=b, flags="MF") / udp,
            Ether(src=smac, dst=dmac) / Dot1Q(vlan=5) / IP(src=a, dst=b) /
            udp]


def main():
    family, iface, smac, dmac = sys.argv[1:5]
    arg = sys.argv[5] if len(sys.argv) > 5 else "1"
    if arg == "odd":
        a = "fd00::1" if family == "6" else "10.1.0.1"
        b = os.environ.get("R2X_LOG_DST",
                           "fd00::2" if family == "6" else "10.1.0.2")
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                          socket.htons(ETH_P_ALL))
        s.bind((iface, 0))
        frames = odd(family, a, b, smac, dmac)
        for f in frames:
            s.send(bytes(f))
        print(len(frames))
        return 0
    repeat = int(arg)
    if family == "6":
        pkts = frames6("fd00::1", os.environ.get("R2X_LOG_DST", "fd00::2"))
    else:
        pkts = frames4("10.1.0.1", os.environ.get("R2X_LOG_DST", "10.1.0.2"))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                      socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    raw = [bytes(Ether(src=smac, dst=dmac) / p) for p in pkts]
    for _ in range(repeat):
        for r in raw:
            s.send(r)
    print(len(raw) * repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
