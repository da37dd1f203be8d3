#!/usr/bin/python3
"""test/tools/nat_peer.py - the two ends of the DNAT end-to-end test.

Standard library only (runs with Debian's /usr/bin/python3). Modes:

  udp-recv ADDR PORT COUNT TIMEOUT   receive COUNT datagrams (or until TIMEOUT
        seconds pass, or SIGTERM); print one line per datagram: source
        address, TTL, local port, payload (checksums: the kernel drops a
        datagram whose IP or UDP checksum is wrong before it reaches a
        socket, so every line is a datagram with valid checksums); then
        "received N". On SIGTERM it first takes what is already queued, so a
        caller that knows every datagram has been delivered (or dropped)
        stops it then instead of waiting out TIMEOUT.
  udp-send DST PORT COUNT [TTL]      send COUNT datagrams "rule2xdp-I"
  tcp-server ADDR PORT               accept one connection, read to EOF,
        print "bytes N sha256 H" (and send the digest back)
  tcp-client DST PORT BYTES          send BYTES of seeded pseudo-random data,
        print "bytes N sha256 H" and the digest the server sent back
  icmp-wait FROM TIMEOUT             print the first ICMP message from FROM:
        "icmp type T code C inner-dst D inner-dport P"
"""
import hashlib
import random
import select
import signal
import socket
import struct
import sys
import time

IP_RECVTTL = 12
IP_TTL = 2
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52


def sigterm_fd():
    """A socket that turns readable once SIGTERM arrives (the caller knows
    nothing more is coming): a wait in select() ends at once, where a flag
    set by a handler would not interrupt a blocking receive."""
    r, w = socket.socketpair()
    r.setblocking(False)
    w.setblocking(False)
    signal.set_wakeup_fd(w.fileno())
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    return r, w


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def udp_recv(addr, port, count, timeout):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    if family(addr) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
    else:
        s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    s.bind((addr, port))
    s.setblocking(False)
    stop, _keep = sigterm_fd()
    print("ready", flush=True)
    end = time.monotonic() + timeout
    n = 0
    stopped = False
    while n < count:
        left = end - time.monotonic()
        if left <= 0:
            break
        readable, _, _ = select.select([s, stop], [], [], left)
        stopped = stop in readable
        # Everything queued now (after SIGTERM: the last of it).
        while n < count:
            try:
                data, anc, _, src = s.recvmsg(2048, socket.CMSG_SPACE(4))
            except BlockingIOError:
                break
            ttl = -1
            for level, typ, val in anc:
                if (level, typ) in ((socket.IPPROTO_IP, IP_TTL),
                                    (socket.IPPROTO_IPV6, IPV6_HOPLIMIT)):
                    ttl = struct.unpack("i", val[:4])[0]
            print(f"{src[0]} ttl {ttl} port {port} "
                  f"{data.decode(errors='replace')}")
            n += 1
        if stopped:
            break
    print(f"received {n}", flush=True)


def udp_send(dst, port, count, ttl=None):
    s = socket.socket(family(dst), socket.SOCK_DGRAM)
    if ttl is not None and family(dst) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    elif ttl is not None:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    for i in range(count):
        s.sendto(f"rule2xdp-{i}".encode(), (dst, port))
        time.sleep(0.002)  # no socket buffer overflow at the receiver


def payload(nbytes):
    rng = random.Random(1234)
    return rng.randbytes(nbytes)


def tcp_server(addr, port):
    ls = socket.socket(family(addr), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(1)
    print("ready", flush=True)
    ls.settimeout(30)
    c, peer = ls.accept()
    c.settimeout(30)
    h = hashlib.sha256()
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        h.update(d)
        n += len(d)
    c.sendall(h.hexdigest().encode())
    c.close()
    print(f"peer {peer[0]} bytes {n} sha256 {h.hexdigest()}", flush=True)


def tcp_client(dst, port, nbytes):
    data = payload(nbytes)
    s = socket.create_connection((dst, port), timeout=30)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    back = b""
    while True:
        d = s.recv(128)
        if not d:
            break
        back += d
    print(f"bytes {len(data)} sha256 {hashlib.sha256(data).hexdigest()}")
    print(f"server says {back.decode()}")


def icmp_wait(frm, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    print("ready", flush=True)
    end = time.time() + timeout
    while time.time() < end:
        s.settimeout(max(0.01, end - time.time()))
        try:
            pkt, src = s.recvfrom(2048)
        except socket.timeout:
            break
        if src[0] != frm:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        typ, code = pkt[ihl], pkt[ihl + 1]
        inner = pkt[ihl + 8:]
        iihl = (inner[0] & 0x0F) * 4
        idst = socket.inet_ntoa(inner[16:20])
        idport = struct.unpack("!H", inner[iihl + 2:iihl + 4])[0]
        print(f"icmp type {typ} code {code} inner-dst {idst} inner-dport {idport}")
        return
    print("no icmp")


def main(argv):
    mode = argv[1]
    if mode == "udp-recv":
        udp_recv(argv[2], int(argv[3]), int(argv[4]), float(argv[5]))
    elif mode == "udp-send":
        udp_send(argv[2], int(argv[3]), int(argv[4]),
                 int(argv[5]) if len(argv) > 5 else None)
    elif mode == "tcp-server":
        tcp_server(argv[2], int(argv[3]))
    elif mode == "tcp-client":
        tcp_client(argv[2], int(argv[3]), int(argv[4]))
    elif mode == "icmp-wait":
        icmp_wait(argv[2], float(argv[3]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
