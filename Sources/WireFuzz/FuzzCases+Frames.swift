// Fuzz cases for the L2–L4 parsers, and one that feeds whole frames to a sandbox's Stack so the
// code behind the parsers (TCP, ARP, NDP, DHCP, fragments) sees hostile input too.
import NetStack
import Wire

extension FuzzCases {
    @Sendable static func ethernet(_ b: UnsafeRawBufferPointer) {
        guard let e = try? EthernetHeader.parse(b) else { return }
        withScratch { out in _ = try? e.emit(into: out) }
    }

    @Sendable static func arp(_ b: UnsafeRawBufferPointer) {
        guard let a = try? ARPPacket.parse(b) else { return }
        withScratch { out in _ = try? a.emit(into: out) }
    }

    @Sendable static func ipv4(_ b: UnsafeRawBufferPointer) {
        guard let h = try? IPv4Header.parse(b, verifyChecksum: false) else { return }
        var count = 0
        guard let header = b.checkedSlice(0, h.headerLength) else { return }
        try? IPv4Header.forEachOption(header) { _, data in count &+= data.count }
        withScratch { out in _ = try? h.emit(into: out) }
    }

    @Sendable static func ipv6(_ b: UnsafeRawBufferPointer) {
        guard let h = try? IPv6Header.parse(b) else { return }
        _ = h.upperLength
        withScratch { out in _ = try? h.emit(into: out) }
    }

    @Sendable static func udp(_ b: UnsafeRawBufferPointer) {
        guard let h = try? UDPHeader.parse(b) else { return }
        guard let datagram = b.checkedSlice(0, Int(h.length)) else { return }
        _ = UDPHeader.verifyChecksum(datagram, source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2))
    }

    @Sendable static func virtio(_ b: UnsafeRawBufferPointer) {
        for size in [10, 12] {
            guard let v = try? VirtioNetHeader.parse(b, size: size) else { continue }
            try? v.validate(frameLength: b.count)
            withScratch { out in _ = try? v.emit(into: out, size: size) }
        }
    }

    @Sendable static func tcp(_ b: UnsafeRawBufferPointer) {
        guard let h = try? TCPHeader.parse(b) else { return }
        _ = TCPHeader.verifyChecksum(b, source: IPv6Address.loopback, destination: IPv6Address.allNodes)
        withScratch { out in _ = try? h.emit(into: out) }
    }

    @Sendable static func icmp(_ b: UnsafeRawBufferPointer) {
        _ = try? ICMPv4Message.parse(b, verifyChecksum: false)
        let src = IPv6Address(linkLocalFrom: MACAddress(2, 0, 0, 0, 0, 1))
        guard (try? ICMPv6Message.parse(b, source: src, destination: .allNodes, verifyChecksum: false)) != nil else { return }
        _ = try? NeighborSolicitation.parse(b)
        _ = try? NeighborAdvertisement.parse(b)
        _ = try? RouterSolicitation.parse(b)
        if let ra = try? RouterAdvertisement.parse(b) {
            withScratch { out in _ = try? ra.build(into: out, source: src, destination: .allNodes) }
        }
    }

    /// Whole frames into a Stack, with and without a virtio-net header. The stack is shared
    /// across inputs so state built by one input (a connection, a lease) meets the next.
    @Sendable static func stackFrame(_ b: UnsafeRawBufferPointer) {
        fuzzStack.now &+= 1_000_000
        fuzzStack.stack.receive(frame: b, now: fuzzStack.now)
        fuzzStack.stack.poll(now: fuzzStack.now)
        fuzzStack.stack.drainEvents { event in
            if case .tcpConnectionRequest(let id, _) = event { fuzzStack.stack.tcpAccept(id, now: fuzzStack.now) }
        }
        fuzzStack.stack.output.drain { _ in }
    }

    private static func withScratch(_ body: (UnsafeMutableRawBufferPointer) -> Void) {
        withUnsafeTemporaryAllocation(byteCount: 70_000, alignment: 16) { body($0) }
    }
}

/// The fuzzer runs inputs one at a time on one thread.
final class FuzzStack: @unchecked Sendable {
    // Sound: Sendable only so that it can be a global; libFuzzer calls the entry point, the one
    // thing that touches it, from a single thread, one input at a time.
    let stack = Stack(configuration: StackConfiguration())
    var now: UInt64 = 1_000_000_000
}

let fuzzStack = FuzzStack()
