#!/usr/bin/python3
"""test/tools/ct_peer.py - the peers of test/e2e/conntrack_state.sh.

  serve READY PORT          (in B) TCP echo of one connection on PORT; writes
                            a line to the fifo READY once listening
  client PORT BYTES         (in A) connects to 10.1.0.2:PORT, sends BYTES
                            random bytes, checks the echo is identical
  udp_echo READY PORT       (in A) answers one datagram on 10.1.0.1:PORT
  udp_ask SPORT DPORT       (in B) from 10.1.0.2:SPORT asks 10.1.0.1:DPORT
                            and waits for the answer (a connection B opened)
  craft KIND DPORT COUNT    (in A) sends COUNT crafted packets to 10.1.0.2
                            with scapy: syn, synfin, fin, ack (TCP flags,
                            source port 40000 + i) or udp (source port
                            41000 + i, 10 bytes); checksums are right,
                            except for kind badsyn (a SYN whose TCP
                            checksum is off by one)
Exit status 0 on success; a timeout or a wrong echo is a failure.
"""
import os
import socket
import sys

TIMEOUT = 30  # only reached when something is broken


def ready(path):
    with open(path, "w") as f:
        f.write("ready\n")


def serve(path, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.1.0.2", port))
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
    c = socket.create_connection(("10.1.0.2", port), timeout=TIMEOUT)
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
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.1.0.1", port))
    s.settimeout(TIMEOUT)
    ready(path)
    d, peer = s.recvfrom(2048)
    s.sendto(b"answer:" + d, peer)


def udp_ask(sport, dport):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.1.0.2", sport))
    s.settimeout(TIMEOUT)
    s.sendto(b"question", ("10.1.0.1", dport))
    d, _ = s.recvfrom(2048)
    if d != b"answer:question":
        sys.exit(f"wrong answer {d!r}")
    print("answered")


def craft(kind, dport, count):
    from scapy.all import IP, TCP, UDP, Raw, send

    flags = {"syn": "S", "badsyn": "S", "synfin": "SF", "fin": "F", "ack": "A"}
    pkts = []
    for i in range(count):
        ip = IP(src="10.1.0.1", dst="10.1.0.2")
        if kind == "udp":
            pkts.append(ip / UDP(sport=41000 + i, dport=dport) / Raw(b"0123456789"))
        else:
            p = ip / TCP(sport=40000 + i, dport=dport, flags=flags[kind],
                         seq=1000 + i)
            if kind == "badsyn":
                p = IP(bytes(p))
                p[TCP].chksum = (p[TCP].chksum + 1) & 0xFFFF
            pkts.append(p)
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
        udp_ask(int(args[0]), int(args[1]))
    elif cmd == "craft":
        craft(args[0], int(args[1]), int(args[2]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
