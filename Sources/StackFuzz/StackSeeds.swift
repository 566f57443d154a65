// The seed corpus for StackFuzz (Tools/fuzz-corpus-stack), written from named steps so that the
// seeds reach deep states: completed handshakes with data both ways, closes, timeouts, fragments.
import FuzzDriver

/// A seed input built step by step in `StackScenario`'s encoding.
struct StackSeed {
    var script = FuzzScript()

    /// Configuration bits (`ScenarioOptions`), and whether the guest's MACs are known ahead.
    init(options: UInt8, knownNeighbors: Bool = true) {
        script.byte(options)
        script.byte(knownNeighbors ? 1 : 0)
    }

    /// An egress SYN with MSS, window scale 7, SACK and timestamps.
    mutating func open(slot: Int, v6: Bool = false, remote: Int = 0, port: Int = 0, mode: AcceptMode = .now, isn: UInt32) {
        script.byte(Step.open)
        script.byte(slot)
        script.byte((v6 ? 1 : 0) | remote << 1 | port << 4)
        script.byte(15 | Int(mode.rawValue) << 5)
        script.u32(isn)
        script.byte(7)
    }

    /// A segment of `lengthCode` (see `payloadLength`), with mutation bits and their operands.
    mutating func segment(slot: Int, lengthCode: UInt8, mutations: UInt8 = 0, operands: [UInt8] = []) {
        script.byte(Step.segment)
        script.byte(slot)
        script.byte(lengthCode)
        script.byte(mutations)
        for b in operands { script.byte(b) }
    }

    /// The guest's answer to a published port's SYN, with the same options as `open`.
    mutating func answer(slot: Int) {
        segment(slot: slot, lengthCode: 0)
        script.byte(15)
        script.byte(7)
    }

    mutating func finish(slot: Int) {
        script.byte(Step.finish)
        script.byte(slot)
    }

    enum RelayAction: UInt8 {
        case accept = 0, refuse, read, readRegions, discard, write, writeInPlace, shutdown, abort, takeDirectly
    }

    mutating func relay(slot: Int, _ action: RelayAction, lengthCode: UInt8 = 0) {
        script.byte(Step.relay)
        script.byte(slot)
        script.byte(action.rawValue)
        script.byte(lengthCode)
    }

    /// Below 64: to the next timer plus that many ms; else a step from `advanceTime`'s table.
    mutating func time(_ code: UInt8) {
        script.byte(Step.time)
        script.byte(code)
    }

    mutating func publish(slot: Int, v6: Bool = false, isn: UInt32) {
        script.byte(Step.publish)
        script.byte(slot)
        script.byte(v6 ? 1 : 0)
        script.u32(isn)
    }

    mutating func raw(_ step: Step, _ bytes: [UInt8]) {
        script.byte(step)
        for b in bytes { script.byte(b) }
    }
}

enum StackSeeds {
    /// Offloads with a virtio-net header: the gateway's usual device.
    static let usual: UInt8 = 0b0000_0011

    static var all: [(name: String, bytes: [UInt8])] {
        var out: [(String, [UInt8])] = []

        // An egress connection: handshake, 1000 bytes each way, FIN each way, TIME-WAIT runs out.
        var s = StackSeed(options: usual)
        s.open(slot: 0, isn: 1000)
        s.segment(slot: 0, lengthCode: 0)
        s.segment(slot: 0, lengthCode: 125)
        s.relay(slot: 0, .read, lengthCode: 200)
        s.relay(slot: 0, .write, lengthCode: 125)
        s.segment(slot: 0, lengthCode: 0)
        s.finish(slot: 0)
        s.relay(slot: 0, .read, lengthCode: 10)
        s.relay(slot: 0, .shutdown)
        s.segment(slot: 0, lengthCode: 0)
        s.time(64 + 7)
        out.append(("established-data-close", s.script.bytes))

        // IPv6, no offloads: a segment out of order (seq +1000), then the gap filled, then SACK
        // blocks and a retransmission from the start.
        s = StackSeed(options: 0b0000_0001)
        s.open(slot: 1, v6: true, isn: 0xFFFF_FF00)
        s.segment(slot: 1, lengthCode: 0)
        s.segment(slot: 1, lengthCode: 100, mutations: 1, operands: [0x03, 0xE8])
        s.segment(slot: 1, lengthCode: 125)
        s.segment(slot: 1, lengthCode: 150)
        s.relay(slot: 1, .write, lengthCode: 200)
        s.segment(slot: 1, lengthCode: 0, mutations: 16, operands: [2, 0x00, 0x10, 0x02, 0x00, 0x00, 0x40, 0x01, 0x00])
        s.segment(slot: 1, lengthCode: 50, mutations: 32, operands: [0, 0])
        s.relay(slot: 1, .readRegions, lengthCode: 200)
        s.time(0)
        s.time(0)
        out.append(("v6-out-of-order-sack", s.script.bytes))

        // The relay takes the guest's bytes as they arrive, part of each large segment: the rest
        // waits in the ring, a later segment queues behind it, a read empties it, an
        // out-of-order segment is held until filled; then the relay stops taking them.
        s = StackSeed(options: usual)
        s.open(slot: 3, isn: 4242)
        s.segment(slot: 3, lengthCode: 0)
        s.relay(slot: 3, .takeDirectly, lengthCode: 100)
        s.segment(slot: 3, lengthCode: 150)
        s.segment(slot: 3, lengthCode: 60)
        s.relay(slot: 3, .read, lengthCode: 250)
        s.segment(slot: 3, lengthCode: 60)
        s.segment(slot: 3, lengthCode: 100, mutations: 1, operands: [0x03, 0xE8])
        s.segment(slot: 3, lengthCode: 125)
        s.relay(slot: 3, .readRegions, lengthCode: 250)
        // Again, declining every second offer (step byte 19: take directly, decline every 2nd).
        s.raw(.relay, [3, 19, 100])
        s.segment(slot: 3, lengthCode: 40)
        s.segment(slot: 3, lengthCode: 40)
        s.segment(slot: 3, lengthCode: 40)
        s.relay(slot: 3, .read, lengthCode: 250)
        s.relay(slot: 3, .takeDirectly, lengthCode: 0)
        s.segment(slot: 3, lengthCode: 80)
        s.finish(slot: 3)
        s.relay(slot: 3, .read, lengthCode: 250)
        out.append(("direct-receive", s.script.bytes))

        // A published port: the stack's SYN, the guest's SYN-ACK, data both ways, the guest closes.
        s = StackSeed(options: usual)
        s.publish(slot: 2, isn: 77_777)
        s.answer(slot: 2)
        s.relay(slot: 2, .writeInPlace, lengthCode: 250)
        s.segment(slot: 2, lengthCode: 182)
        s.relay(slot: 2, .read, lengthCode: 200)
        s.finish(slot: 2)
        s.relay(slot: 2, .discard)
        s.relay(slot: 2, .shutdown)
        s.segment(slot: 2, lengthCode: 0)
        out.append(("published-port", s.script.bytes))

        // A small budget and small buffers, ACKs deferred: the guest fills the window, the relay
        // does not read, then reads; the relay writes more than the guest's window takes.
        s = StackSeed(options: 0b0001_1111)
        s.open(slot: 0, isn: 5)
        s.segment(slot: 0, lengthCode: 0, mutations: 4, operands: [0x00, 0x10])
        for _ in 0..<6 { s.segment(slot: 0, lengthCode: 182) }
        s.relay(slot: 0, .write, lengthCode: 199)
        s.relay(slot: 0, .write, lengthCode: 199)
        s.time(0)
        s.relay(slot: 0, .read, lengthCode: 199)
        s.segment(slot: 0, lengthCode: 182)
        s.segment(slot: 0, lengthCode: 0)
        s.time(0)
        s.time(0)
        out.append(("small-budget-window", s.script.bytes))

        // The guest stops acknowledging: retransmission timeouts until the connection gives up.
        s = StackSeed(options: usual)
        s.open(slot: 3, port: 1, isn: 42)
        s.segment(slot: 3, lengthCode: 0)
        s.relay(slot: 3, .write, lengthCode: 196)
        for _ in 0..<14 { s.time(0) }
        out.append(("retransmit-timeout", s.script.bytes))

        // A connection accepted later, a refused one, and too many at once under small limits.
        s = StackSeed(options: 0b0100_0011)
        s.open(slot: 0, mode: .later, isn: 1)
        s.open(slot: 1, mode: .refuse, isn: 2)
        s.open(slot: 2, isn: 3)
        s.open(slot: 3, isn: 4)
        s.relay(slot: 0, .accept)
        s.segment(slot: 0, lengthCode: 10)
        s.relay(slot: 0, .abort)
        s.time(64 + 3)
        out.append(("accept-later-refuse-limits", s.script.bytes))

        // A TCP segment of an established connection in overlapping, reordered IPv4 fragments,
        // then UDP in IPv6 fragments with one beyond 64 KiB.
        s = StackSeed(options: usual)
        s.open(slot: 0, isn: 9)
        s.segment(slot: 0, lengthCode: 0)
        // kind (TCP of slot 0), length code, identification, piece size code, one change per piece, order.
        s.raw(.fragmentsV4, [3, 100, 0, 19, 0, 0, 0, 0, 0, 0, 1])
        s.relay(slot: 0, .read, lengthCode: 200)
        s.raw(.fragmentsV4, [3, 100, 1, 19, 0, 1 | 8, 0, 0, 0, 0, 2])
        s.raw(.fragmentsV6, [0, 150, 1, 39, 0, 3, 0, 0, 1])
        s.raw(.fragmentsV4, [1, 120, 2, 9, 0, 5, 0, 0, 0, 0, 0, 0])
        out.append(("fragments", s.script.bytes))

        // The link and local services: ARP, NDP, DHCP discover and request, pings, UDP both ways.
        s = StackSeed(options: usual, knownNeighbors: false)
        s.raw(.arp, [0])
        s.raw(.ndp, [0x20])
        s.raw(.ndp, [0x24 | 0x10])
        s.raw(.dhcp, [0, 0])
        s.raw(.dhcp, [1 | 8, 0])
        s.raw(.icmp, [0, 20])
        s.raw(.icmp, [3, 20])
        s.raw(.icmp, [4, 0])
        s.raw(.udp, [0, 60])
        s.raw(.udp, [2 | 4, 250])
        s.raw(.icmp, [6, 0])
        out.append(("link-and-services", s.script.bytes))
        return out
    }
}
