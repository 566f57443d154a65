#!/usr/bin/env python3
# Request/response and connection-rate probes for bench-gateway.sh: a host-side server and a
# guest-side client that print one JSON line. Loopback or benchmark-made addresses only.
#
#   bench-rr.py server --bind 127.0.0.1 --rr-port P --crr-port Q
#   bench-rr.py rr-many --bind ADDR [--bind ADDR …] --port P
#   bench-rr.py rr  --host ADDR --port P [--round-trips 10000] [--warmup 500] [--dump FILE]
#   bench-rr.py rr  --host ADDR --port P --pace-ms P --start-file F --seconds S [--offset-ms O] [--dump FILE]
#   bench-rr.py crr --host ADDR --port Q [--connections 2000] [--max-seconds 10]
#
# rr: one connection, TCP_NODELAY both ends, 1 byte each way per round trip, timed one by one.
# With --start-file, many clients share one measured window: each connects and warms up, waits
# for the file (a Unix time written into it, the window's start), then makes one round trip every
# --pace-ms from that time plus --offset-ms, on a fixed schedule so that staggered clients stay
# staggered, until --seconds after the start.
# rr-many: the rr server for many clients at once (server's rr serves one connection at a time):
# a thread per connection, on any number of listening addresses.
# crr: per connection connect, send 1 byte, read the echo, close; sequential, stops at the count
# or the time limit, whichever comes first.
import argparse
import json
import selectors
import socket
import sys
import threading
import time


def echo(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with c:
        while True:
            try:
                d = c.recv(1)
                if not d:
                    break
                c.sendall(d)
            except OSError:
                break


def serve_rr(listener):
    while True:
        c, _ = listener.accept()
        echo(c)


def rr_many(a):
    # A thread blocked in recv per connection: its wake-up is the kernel's alone, as with serve_rr,
    # where a selector loop would add its own pass to every round trip.
    threading.stack_size(256 * 1024)
    sel = selectors.DefaultSelector()
    for addr in a.bind:
        sel.register(listen(addr, a.port), selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            c, _ = key.fileobj.accept()
            threading.Thread(target=echo, args=(c,), daemon=True).start()


def serve_crr(listener):
    while True:
        c, _ = listener.accept()
        with c:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.settimeout(5)
            try:
                d = c.recv(1)
                if d:
                    c.sendall(d)
                    # Wait for the client's FIN so that its side closes first and the TIME-WAIT
                    # state stays in the guest, as with a real client.
                    c.recv(1)
            except OSError:
                pass


def listen(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(256)
    return s


def server(a):
    rr = listen(a.bind, a.rr_port)
    crr = listen(a.bind, a.crr_port)
    threading.Thread(target=serve_rr, args=(rr,), daemon=True).start()
    serve_crr(crr)


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def connect(host, port, patience):
    """A connection to HOST:PORT, tried again for PATIENCE seconds (a sandbox's link may still be
    coming up when its client starts)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return socket.create_connection((host, port), timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_for_start(path):
    """The Unix time written in PATH, once the file is there."""
    while True:
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return float(text)
        except FileNotFoundError:
            pass
        time.sleep(0.05)


def rr_window(a, c):
    """Round trips on a fixed schedule in the shared window: every pace_ms from the start plus
    offset_ms until the start plus seconds. A round trip that comes back after its successor's slot
    skips the slots it missed, rather than making up for them in a burst."""
    start = wait_for_start(a.start_file)
    # The window is given in wall-clock time (shared with the script); sleeping goes by the
    # monotonic clock.
    to_mono = time.monotonic() - time.time()
    first, end = start + a.offset_ms / 1e3 + to_mono, start + a.seconds + to_mono
    period = a.pace_ms / 1e3
    clock = time.perf_counter_ns
    rtts, missed, k = [], 0, 0
    while True:
        slot = first + k * period
        if slot >= end:
            break
        now = time.monotonic()
        if slot > now:
            time.sleep(slot - now)
        t = clock()
        c.sendall(b"x")
        if c.recv(1) != b"x":
            sys.exit(f"rr: short read after {len(rtts)} round trips")
        rtts.append(clock() - t)
        k += 1
        behind = int((time.monotonic() - first) / period) + 1 - k
        if behind > 0:
            missed += behind
            k += behind
    # No client leaves before the window ends: N interpreters exiting would hold up the last
    # round trips of the clients still in it.
    time.sleep(max(0.0, end - time.monotonic()))
    return rtts, missed


def rr(a):
    c = connect(a.host, a.port, 30 if a.start_file else 0)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(a.warmup):
        c.sendall(b"x")
        if c.recv(1) != b"x":
            sys.exit("rr: short read during warm-up")
    if a.start_file:
        rtts, missed = rr_window(a, c)
        c.close()
        report_rr(a, rtts, dict(missed=missed))
        return
    clock = time.perf_counter_ns
    rtts = [0] * a.round_trips
    for i in range(a.round_trips):
        t = clock()
        c.sendall(b"x")
        if c.recv(1) != b"x":
            sys.exit(f"rr: short read after {i} round trips")
        rtts[i] = clock() - t
        if a.pace_ms:
            time.sleep(a.pace_ms / 1e3)
    c.close()
    report_rr(a, rtts, {})


def report_rr(a, rtts, extra):
    if a.dump:
        with open(a.dump, "w") as f:
            f.write("\n".join(str(x) for x in rtts))
    rtts = sorted(rtts)
    if not rtts:
        print(json.dumps(dict(round_trips=0, **extra)))
        return
    print(json.dumps(dict(round_trips=len(rtts), median_us=percentile(rtts, 0.5) / 1e3,
                          p99_us=percentile(rtts, 0.99) / 1e3, min_us=rtts[0] / 1e3,
                          mean_us=sum(rtts) / len(rtts) / 1e3, **extra)))


def crr(a):
    done = errors = 0
    first_error = None
    t0 = time.perf_counter()
    deadline = t0 + a.max_seconds
    clock = time.perf_counter_ns
    # Where a connection's time goes: connect returning, the byte's round trip, close.
    phases = ([], [], [])
    while done < a.connections and time.perf_counter() < deadline:
        try:
            t0n = clock()
            s = socket.create_connection((a.host, a.port), timeout=5)
            t1n = clock()
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"x")
            ok = s.recv(1) == b"x"
            t2n = clock()
            s.close()
            t3n = clock()
        except OSError as e:
            ok = False
            first_error = first_error or str(e)
        if ok:
            done += 1
            for i, d in enumerate((t1n - t0n, t2n - t1n, t3n - t2n)):
                phases[i].append(d)
        else:
            errors += 1
            if errors > 20:
                break
    elapsed = time.perf_counter() - t0
    medians = [percentile(sorted(p), 0.5) / 1e3 if p else None for p in phases]
    print(json.dumps(dict(connections=done, errors=errors, first_error=first_error, seconds=elapsed,
                          per_second=done / elapsed, connect_us=medians[0], exchange_us=medians[1],
                          close_us=medians[2])))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--bind", default="127.0.0.1")
    s.add_argument("--rr-port", type=int, required=True)
    s.add_argument("--crr-port", type=int, required=True)
    r = sub.add_parser("rr")
    r.add_argument("--host", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--round-trips", type=int, default=10000)
    r.add_argument("--warmup", type=int, default=500)
    r.add_argument("--pace-ms", type=float, default=0,
                   help="sleep this long between round trips (sparse traffic: what an idle-ish path costs)")
    r.add_argument("--dump", help="also write every round trip, in order, in ns, one a line, to this file")
    r.add_argument("--start-file", help="after the warm-up wait for this file, holding the Unix time at which "
                   "the window starts; then one round trip every --pace-ms (a fixed schedule) until --seconds "
                   "after it; --round-trips does not apply")
    r.add_argument("--offset-ms", type=float, default=0, help="with --start-file: the first round trip this long "
                   "after the start (staggers many clients)")
    r.add_argument("--seconds", type=float, default=10, help="with --start-file: the window's length")
    m = sub.add_parser("rr-many")
    m.add_argument("--bind", action="append", required=True, help="an address to listen on (repeatable)")
    m.add_argument("--port", type=int, required=True)
    c = sub.add_parser("crr")
    c.add_argument("--host", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--connections", type=int, default=2000)
    c.add_argument("--max-seconds", type=float, default=10)
    a = p.parse_args()
    if a.mode == "rr" and a.start_file and not a.pace_ms:
        p.error("--start-file needs --pace-ms")
    {"server": server, "rr-many": rr_many, "rr": rr, "crr": crr}[a.mode](a)


if __name__ == "__main__":
    main()
