// The seed corpus for RelayFuzz (Tools/fuzz-corpus-relay): each machine through a whole life, from
// dialling or connecting to a clean end with FIN both ways, so the fuzzer starts from deep states.
enum RelaySeeds {
    static var all: [(name: String, bytes: [UInt8])] {
        [
            // Egress: dial, accept, bytes both ways, the upstream's EOF, the guest's FIN, a clean end.
            ("egress-whole-life", [
                RelayMachine.egress.rawValue, 0,
                15, 0, 0, 0, 15,  // watch, connected, watch for reading
                6, 0, 0,  // established
                3, 8, 0,  // socket readable: pull, socket empty
                6, 1, 0, 9, 0, 0,  // readable: push, emptied
                3, 8, 2, 15,  // pull: end of stream, EOF to the guest
                6, 3, 0, 9, 0, 1,  // peer closed: push, emptied and complete: shut upstream
                6, 4, 1, 9, 0, 1, 15,  // closed cleanly
            ]),
            // Egress held for a name check: more bytes needed, then allowed; rate limits both ways.
            ("egress-name-check", [
                RelayMachine.egress.rawValue, 1,
                15, 0, 0, 0, 15, 6, 0, 0,
                6, 1, 0, 7, 1,  // readable: check, need more
                6, 1, 0, 7, 0,  // readable: check, allowed: push
                9, 3, 10, 10, 1,  // rate limited, tokens back
                3, 8, 4, 10, 0,  // pull rate limited, tokens back
                12, 0, 12, 1,  // idle timer: not quiet, then quiet
            ]),
            // Egress closing with bytes the upstream cannot take yet: draining, then done.
            ("egress-draining", [
                RelayMachine.egress.rawValue, 0,
                15, 0, 0, 0, 6, 0, 0, 6, 1, 0,
                6, 4, 1, 9, 1, 15, 4, 9, 0, 1, 13,
            ]),
            // A published port's client: the guest answers, bytes both ways, FIN both ways.
            ("inbound-whole-life", [
                RelayMachine.inbound.rawValue,
                11, 0, 0, 1, 11,  // established
                2, 5, 0,  // readable socket: pull, empty
                0, 1, 1, 6, 0, 0,  // guest bytes: push, emptied
                2, 5, 2, 11,  // client EOF to the guest
                0, 3, 1, 6, 0, 1,  // guest FIN: push, emptied and complete: close
            ]),
            // A published port whose guest closes with bytes left for the client: drain, flush timer.
            ("inbound-draining", [
                RelayMachine.inbound.rawValue,
                11, 0, 0, 1, 0, 1, 1, 0, 4, 0, 20, 11, 3, 6, 1, 8,
            ]),
            // DNS over TCP: two queries, their answers, the guest's FIN, our FIN, the end.
            ("dns-session", [
                RelayMachine.dnsSession.rawValue, 3,
                0, 1, 0, 1, 0, 5, 0, 5,
                0, 0, 3, 0, 3, 1, 0, 4, 0, 0, 4,
            ]),
            // DNS over TCP: a guest that asks and never reads, then the idle timer.
            ("dns-unread", [
                RelayMachine.dnsSession.rawValue, 1,
                0, 1, 3, 1, 4, 5, 0, 6, 20, 0, 0, 6, 5, 1,
            ]),
        ]
    }
}
