#!/usr/bin/env python3
# The guest side of bench-many.sh's crr and fetch workloads: one process per sandbox that waits on
# the script's barrier, then makes HTTP GETs over new connections, and prints one JSON line.
#
#   bench-many-guest.py --host ADDR --port P --path /x --connections K --go FIFO --ready FIFO
#
# Each round: read "gT" from its own go FIFO (the script writes one to every client's, T the round's
# start in ns since the epoch, a little ahead), sleep until T, so that all begin together and the
# interpreter's start is not timed, make K sequential connections (connect, GET, read the whole
# answer, close: the client closes first, so TIME-WAIT stays in the guest), then write one byte to
# the shared ready FIFO. One byte is written there once set up, too. Anything else ends the
# client: only then does it print and exit, so that early finishers' exits do not take CPU from a
# round still running.
import argparse
import json
import os
import socket
import struct
import time

BUFFER = memoryview(bytearray(1 << 18))


def get(host, port, request, timeout):
    """One connection: the answer's body size in bytes."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # The kernel's timeouts on a blocking socket: a Python timeout would add a poll() before
        # every call, and the client's own cost is what must stay small here.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
        s.connect((host, port))
        s.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed after {len(head)} bytes of the header")
            head += chunk
        head, _, body = head.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 200 " not in status:
            raise ConnectionError(status.decode(errors="replace"))
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise ConnectionError("no Content-Length")
        got = len(body)
        while got < length:
            n = s.recv_into(BUFFER, min(len(BUFFER), length - got))
            if not n:
                raise ConnectionError(f"closed after {got} of {length} bytes")
            got += n
        return got
    finally:
        s.close()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--go", required=True)
    p.add_argument("--ready", required=True)
    a = p.parse_args()
    request = f"GET {a.path} HTTP/1.1\r\nHost: {a.host}\r\n\r\n".encode()
    timeout = struct.pack("ll", int(a.timeout), int(a.timeout % 1 * 1e6))
    go = os.open(a.go, os.O_RDONLY)
    ready = os.open(a.ready, os.O_WRONLY)
    os.write(ready, b"r")
    rounds = []
    while (message := os.read(go, 64)).startswith(b"g"):
        # A start time rather than the byte itself: the script's writes to 200 FIFOs take tens of
        # milliseconds, and the first client woken would run alone meanwhile. Timers that expire
        # together wake every client at once.
        delay = (int(message[1:]) - time.time_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        done = errors = nbytes = 0
        first_error = None
        start, cpu = time.time_ns(), time.process_time_ns()
        try:
            for _ in range(a.connections):
                try:
                    nbytes += get(a.host, a.port, request, timeout)
                    done += 1
                except (OSError, ValueError) as e:
                    errors += 1
                    first_error = first_error or f"{e.__class__.__name__}: {e}"
            end = time.time_ns()
            rounds.append(dict(start_ns=start, end_ns=end, cpu_ns=time.process_time_ns() - cpu, done=done,
                               errors=errors, bytes=nbytes, first_error=first_error))
        finally:
            os.write(ready, b"d")
    print(json.dumps(dict(rounds=rounds)))


if __name__ == "__main__":
    main()
