#!/usr/bin/python3
"""test/tc/capture.py IFACE PORT COUNT TIMEOUT - frames seen on a device.

Standard library only. Captures IPv4 UDP frames to PORT arriving on IFACE
(an AF_PACKET socket, so it sees frames before the IP layer decides to keep
them) and prints one line per frame:

  dmac D smac S src A dst B ttl T ipsum ok|bad udpsum ok|bad|none payload P

The checksums are recomputed from scratch here, not taken from the kernel.
Prints "ready" once bound, and "captured N" at the end: after COUNT frames,
TIMEOUT seconds, or SIGTERM (then it first takes the frames already queued,
so a caller that knows every frame has been decided stops it at once).
"""
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 3


def fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ones_sum(data):
    if len(data) % 2:
        data += b"\0"
    return fold(sum(struct.unpack(f"!{len(data) // 2}H", data)))


def mac(b):
    return ":".join(f"{x:02x}" for x in b)


def sigterm_fd():
    """A socket that turns readable once SIGTERM arrives."""
    r, w = socket.socketpair()
    r.setblocking(False)
    w.setblocking(False)
    signal.set_wakeup_fd(w.fileno())
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    return r, w


def udp_to(frame, addr, port):
    """(ip, udp) of an incoming IPv4 UDP frame to PORT, else None."""
    if addr[2] == socket.PACKET_OUTGOING or len(frame) < 14 + 20 + 8:
        return None
    if frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0xF) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    if ip[9] != 17 or len(ip) < ihl + 8 or total > len(ip):
        return None
    udp = ip[ihl:total]
    if struct.unpack("!H", udp[2:4])[0] != port:
        return None
    return ip, udp


def main():
    iface, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.setblocking(False)
    stop, _keep = sigterm_fd()
    print("ready", flush=True)
    deadline = time.monotonic() + timeout
    n = 0
    stopped = False
    while n < count and not stopped:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        readable, _, _ = select.select([s, stop], [], [], left)
        stopped = stop in readable
        while n < count:  # everything queued now
            try:
                frame, addr = s.recvfrom(65535)
            except BlockingIOError:
                break
            got = udp_to(frame, addr, port)
            if got:
                show(frame, *got)
                n += 1
    print(f"captured {n}", flush=True)


def show(frame, ip, udp):
    """Prints one captured frame, checksums recomputed from scratch."""
    ihl = (ip[0] & 0xF) * 4
    ipsum = "ok" if ones_sum(ip[:ihl]) == 0xFFFF else "bad"
    if struct.unpack("!H", udp[6:8])[0] == 0:
        udpsum = "none"
    else:
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
        udpsum = "ok" if ones_sum(pseudo + udp) == 0xFFFF else "bad"
    print(f"dmac {mac(frame[0:6])} smac {mac(frame[6:12])} "
          f"src {socket.inet_ntoa(ip[12:16])} dst {socket.inet_ntoa(ip[16:20])} "
          f"ttl {ip[8]} ipsum {ipsum} udpsum {udpsum} "
          f"payload {udp[8:].decode(errors='replace')}", flush=True)


main()
