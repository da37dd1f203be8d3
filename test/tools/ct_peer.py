#!/usr/bin/python3
"""test/tools/ct_peer.py - the peers of test/e2e/conntrack_state.sh.

  serve READY PORT          (in B) TCP echo of one connection on PORT; writes
                            a line to the fifo READY once listening
  client PORT BYTES         (in A) connects to 10.1.0.2:PORT, sends BYTES
                            random bytes, checks the echo is identical
  udp_echo READY PORT       (in A) answers one datagram on 10.1.0.1:PORT
  udp_ask SPORT DPORT [SRC] (in B) from 10.1.0.2:SPORT (or SRC:SPORT) asks
                            10.1.0.1:DPORT and waits for the answer (a
                            connection B opened)
  craft KIND DPORT COUNT    (in A) sends COUNT crafted packets to 10.1.0.2
                            with scapy: syn, synfin, fin, ack (TCP flags,
                            source port 40000 + i) or udp (source port
                            41000 + i, 10 bytes), bigudp (the same with
                            1200 bytes); checksums are right, except for
                            kinds badsyn (a SYN whose TCP checksum is off
                            by one) and badudp (bigudp's, off by one)
  icmp KIND SPORT DPORT COUNT
                            (in A) sends COUNT ICMP errors to
                            10.1.0.2 about a UDP datagram 10.1.0.2:SPORT ->
                            10.1.0.1:DPORT (quoted: its IP header, UDP
                            header and 4 bytes): port (port unreachable),
                            host (host unreachable), short (the quote cut
                            after 2 bytes of the UDP header), badsum (port
                            unreachable, ICMP checksum off by one),
                            wrongdst (port unreachable quoting a datagram
                            from 10.1.0.3, B's other address), longhost
                            (host, quoting 1000 bytes of the datagram: a
                            message longer than XDP used to sum); over IPv6
                            ICMPv6 address (for host) and port unreachable
With R2X_CT_FAMILY=6 the same over IPv6: fd00::1 for 10.1.0.1, fd00::2 for
10.1.0.2; craft then sends frames on veth-a to R2X_CT_DST_MAC.
Exit status 0 on success; a timeout or a wrong echo is a failure.
"""
import os
import socket
import sys

TIMEOUT = 30  # only reached when something is broken
V6 = os.environ.get("R2X_CT_FAMILY") == "6"
A = "fd00::1" if V6 else "10.1.0.1"
B = "fd00::2" if V6 else "10.1.0.2"
B2 = "fd00::3" if V6 else "10.1.0.3"  # B's second address
FAMILY = socket.AF_INET6 if V6 else socket.AF_INET


def ready(path):
    with open(path, "w") as f:
        f.write("ready\n")


def serve(path, port):
    s = socket.socket(FAMILY)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((B, port))
    s.listen(1)
    s.settimeout(TIMEOUT)
    ready(path)
    c, _ = s.accept()
    c.settimeout(TIMEOUT)
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()


def client(port, n):
    data = os.urandom(n)
    c = socket.create_connection((B, port), timeout=TIMEOUT)
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        got += d
    if got != data:
        sys.exit(f"echo differs: sent {len(data)} bytes, got {len(got)}")
    print(f"echoed {len(got)} bytes")


def udp_echo(path, port):
    s = socket.socket(FAMILY, socket.SOCK_DGRAM)
    s.bind((A, port))
    s.settimeout(TIMEOUT)
    ready(path)
    d, peer = s.recvfrom(2048)
    s.sendto(b"answer:" + d, peer)


def udp_ask(sport, dport, src=B):
    s = socket.socket(FAMILY, socket.SOCK_DGRAM)
    s.bind((src, sport))
    s.settimeout(TIMEOUT)
    s.sendto(b"question", (A, dport))
    d, _ = s.recvfrom(2048)
    if d != b"answer:question":
        sys.exit(f"wrong answer {d!r}")
    print("answered")


def craft(kind, dport, count):
    from scapy.all import IP, IPv6, TCP, UDP, Ether, Raw, send, sendp

    flags = {"syn": "S", "badsyn": "S", "synfin": "SF", "fin": "F", "ack": "A"}
    pkts = []
    for i in range(count):
        ip = IPv6(src=A, dst=B) if V6 else IP(src=A, dst=B)
        if kind in ("udp", "bigudp", "badudp"):
            data = b"0123456789" if kind == "udp" else bytes(1200)
            p = ip / UDP(sport=41000 + i, dport=dport) / Raw(data)
            if kind == "badudp":
                p = (IPv6 if V6 else IP)(bytes(p))
                p[UDP].chksum = (p[UDP].chksum % 0xFFFF) + 1
            pkts.append(p)
        else:
            p = ip / TCP(sport=40000 + i, dport=dport, flags=flags[kind],
                         seq=1000 + i)
            if kind == "badsyn":
                p = (IPv6 if V6 else IP)(bytes(p))
                p[TCP].chksum = (p[TCP].chksum + 1) & 0xFFFF
            pkts.append(p)
    if V6:
        # scapy would ask for B's address by neighbour discovery first (a
        # packet the firewall counts): frames to B's MAC instead.
        mac = os.environ["R2X_CT_DST_MAC"]
        sendp([Ether(dst=mac) / p for p in pkts], iface="veth-a", verbose=False)
    else:
        send(pkts, verbose=False)
    print(f"sent {count}")


def icmp(kind, sport, dport, count):
    from scapy.all import (ICMP, IP, UDP, Ether, ICMPv6DestUnreach, IPv6, Raw,
                           send, sendp)

    # wrongdst: about a flow of B's other address, sent to B's main one
    # (conntrack finds the flow, but not for this destination).
    qsrc = (B2 if kind == "wrongdst" else B)
    ip = IPv6 if V6 else IP
    quoted = bytes(ip(src=qsrc, dst=A) / UDP(sport=sport, dport=dport) /
                   Raw(b"abcd" * (250 if kind == "longhost" else 1)))
    if kind == "short":
        quoted = quoted[:(40 if V6 else 20) + 2]
    if V6:
        # address unreachable (3) stands for host unreachable, port (4)
        code = {"port": 4, "host": 3, "longhost": 3, "short": 4, "badsum": 4,
                "wrongdst": 4}[kind]
        err = ICMPv6DestUnreach(code=code)
    else:
        code = {"port": 3, "host": 1, "longhost": 1, "short": 3, "badsum": 3,
                "wrongdst": 3}[kind]
        err = ICMP(type=3, code=code)
    pkts = []
    for _ in range(count):
        p = ip(bytes(ip(src=A, dst=B) / err / Raw(quoted)))
        if kind == "badsum" and V6:
            p[ICMPv6DestUnreach].cksum = (p[ICMPv6DestUnreach].cksum + 1) & 0xFFFF
        elif kind == "badsum":
            p[ICMP].chksum = (p[ICMP].chksum + 1) & 0xFFFF
        pkts.append(p)
    if V6:
        mac = os.environ["R2X_CT_DST_MAC"]
        sendp([Ether(dst=mac) / p for p in pkts], iface="veth-a", verbose=False)
    else:
        send(pkts, verbose=False)
    print(f"sent {count}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "serve":
        serve(args[0], int(args[1]))
    elif cmd == "client":
        client(int(args[0]), int(args[1]))
    elif cmd == "udp_echo":
        udp_echo(args[0], int(args[1]))
    elif cmd == "udp_ask":
        udp_ask(int(args[0]), int(args[1]), *args[2:3])
    elif cmd == "craft":
        craft(args[0], int(args[1]), int(args[2]))
    elif cmd == "icmp":
        icmp(args[0], int(args[1]), int(args[2]), int(args[3]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
