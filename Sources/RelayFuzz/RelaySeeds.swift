// The seed corpus for RelayFuzz (Tools/fuzz-corpus-relay): each machine through a whole life, from
// dialling or connecting to a clean end with FIN both ways, so the fuzzer starts from deep states.
// Each line is one input the owner gets, then the operands its follow-ups read (pump outcomes).
// Debug builds only: see main.swift.
#if DEBUG
enum RelaySeeds {
    static var all: [(name: String, bytes: [UInt8])] {
        [
            // Egress: dial, accept, bytes both ways, the upstream's EOF, the guest's FIN, a clean end.
            ("egress-whole-life", [
                RelayMachine.egress.rawValue, 0,
                12,  // watch for the connect
                0, 0, 0, 12,  // connected: accept the guest; watch for reading
                6, 0, 0,  // established
                3, 0,  // socket readable: pull, socket empty
                6, 1, 0, 0, 0,  // guest bytes: push, emptied
                3, 2, 12,  // pull: end of stream, EOF to the guest
                6, 3, 0, 0, 1,  // guest FIN: push, emptied and complete: shut upstream, close
                6, 4, 1,  // closed cleanly: finish
            ]),
            // Egress held for a name check: more bytes needed, then allowed; rate limits both ways.
            ("egress-name-check", [
                RelayMachine.egress.rawValue, 1,
                12, 0, 0, 0, 12, 6, 0, 0,
                6, 1, 0, 1,  // readable: check, need more
                6, 1, 0, 0, 3, 10,  // readable: check, allowed: push, rate limited
                7, 1, 0, 0,  // tokens back: push, emptied
                3, 4, 7, 0, 0,  // pull rate limited; tokens back: pull, empty
                9, 0, 9, 1,  // idle timer: not quiet, then quiet
            ]),
            // Egress closing with bytes the upstream cannot take yet: draining, then done.
            ("egress-draining", [
                RelayMachine.egress.rawValue, 0,
                12, 0, 0, 0, 12, 6, 0, 0,
                6, 1, 0, 1,  // guest bytes: push, socket full
                6, 4, 1, 1, 12,  // closed cleanly: push, still full: draining
                4, 0, 1,  // writable: push, emptied and complete: finish
                10,  // detach after the end
            ]),
            // A published port's client: the guest answers, bytes both ways, FIN both ways.
            ("inbound-whole-life", [
                RelayMachine.inbound.rawValue,
                9, 0, 0, 1, 9,  // established
                2, 0,  // readable client: pull, empty
                0, 1, 1, 0, 0,  // guest bytes: push, emptied
                2, 2, 9,  // client EOF to the guest
                0, 3, 1, 0, 1,  // guest FIN: push, emptied and complete: close the client
            ]),
            // A published port whose guest closes with bytes left for the client: drain, rate limit, reset.
            ("inbound-draining", [
                RelayMachine.inbound.rawValue,
                9, 0, 0, 1,
                0, 1, 1, 1,  // guest bytes: push, client full
                0, 4, 0, 20, 1, 9,  // closed with bytes unread: drain, still full
                3, 3, 5, 5, 1, 0, 0,  // writable: rate limited; tokens back: emptied, cut off
            ]),
            // DNS over TCP: two queries, their answers, the guest's FIN, our FIN, the end.
            ("dns-session", [
                RelayMachine.dnsSession.rawValue, 3,
                0, 0, 0, 3, 0, 3, 0, 0, 0, 0, 0,  // established: read two queries
                1, 0, 0, 0, 0, 0, 0,  // an answer
                1, 0, 0, 0, 0, 0, 0,  // the other answer
                0, 3, 0, 0, 1, 0, 0,  // guest FIN: stop reading, send FIN
                0, 4,  // closed: finish
            ]),
            // DNS over TCP: a guest that asks and never reads its answers.
            ("dns-unread", [
                RelayMachine.dnsSession.rawValue, 1,
                0, 0, 1, 3, 1, 3, 0, 0, 0, 0,  // established: read up to the in-flight bound
                1, 5,  // an answer behind too many unread: reset
            ]),
        ]
    }
}
#endif
