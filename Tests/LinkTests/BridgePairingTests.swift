// The VM attach mode: two TAPs joined by a bridge. A frame written into one TAP's fd comes out of
// the other's, broadcast first and then unicast both ways once the bridge has learned the MACs.
import GatewayTestSupport
import Foundation
import Testing
import Wire

@testable import Link

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct BridgePairingTests {
    @Test func framesCrossTheBridgeBothWays() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let host = scratch.host
        let bridge = scratch.deviceName("b", "br")
        let nameA = scratch.deviceName("t", "a")
        let nameB = scratch.deviceName("v", "b")

        try host.createBridge(named: bridge)
        let a = try TAPDevice(name: nameA)
        let b = try TAPDevice(name: nameB)
        try host.enslave(nameA, toBridge: bridge)
        try host.enslave(nameB, toBridge: bridge)
        for name in [bridge, nameA, nameB] { try host.setLink(named: name, up: true) }

        let bridgeInfo = try host.link(named: bridge)
        #expect(bridgeInfo.kind == "bridge")
        #expect(try host.link(named: nameA).masterIndex == bridgeInfo.index)
        #expect(try host.link(named: nameB).masterIndex == bridgeInfo.index)
        #expect(try host.link(named: nameA).isRunning)

        let macA = randomMAC()
        let macB = randomMAC()
        let token = (0..<16).map { _ in UInt8.random(in: 0...255) }
        func frame(to destination: MACAddress, from source: MACAddress, _ label: UInt8) -> [UInt8] {
            TestFrames.ethernet(destination: destination, source: source, type: TestFrames.etherTypeExperimental, payload: [label] + token)
        }
        // Host traffic on the ports (IPv6 router solicitations, MLD) is skipped by EtherType and token.
        func isOurs(_ label: UInt8) -> ([UInt8]) -> Bool {
            { f in TestFrames.etherType(f) == TestFrames.etherTypeExperimental && f.count >= 31 && f[14] == label && Array(f[15..<31]) == token }
        }

        // Broadcast from A reaches B intact; the bridge learns A.
        let broadcastA = frame(to: .broadcast, from: macA, 1)
        try a.send(broadcastA)
        #expect(try b.receive(where: isOurs(1)) == broadcastA)

        // Broadcast from B reaches A; the bridge learns B.
        let broadcastB = frame(to: .broadcast, from: macB, 2)
        try b.send(broadcastB)
        #expect(try a.receive(where: isOurs(2)) == broadcastB)

        // The forwarding database now has each MAC on its own port.
        let fdb = try TestHost.run(["bridge", "fdb", "show", "br", bridge])
        #expect(fdb.contains("\(macA) dev \(nameA)"))
        #expect(fdb.contains("\(macB) dev \(nameB)"))

        // Unicast both ways.
        let toB = frame(to: macB, from: macA, 3)
        try a.send(toB)
        #expect(try b.receive(where: isOurs(3)) == toB)
        let toA = frame(to: macA, from: macB, 4)
        try b.send(toA)
        #expect(try a.receive(where: isOurs(4)) == toA)

        // Releasing a port stops the forwarding.
        try host.release(nameB)
        #expect(try host.link(named: nameB).masterIndex == nil)
        try a.send(frame(to: .broadcast, from: macA, 5))
        #expect(try b.receive(within: 0.3, where: isOurs(5)) == nil)

        try host.deleteBridge(named: bridge)
        #expect(throws: LinkError.self) { try host.link(named: bridge) }
        // The ports survive their bridge.
        #expect(try host.link(named: nameA).masterIndex == nil)
    }

    /// Many frames per wake-up: the batch reads take every waiting frame, in order, into
    /// caller-provided buffers, and stop (returning 0) when none is left.
    @Test func batchReadsTakeEveryWaitingFrame() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let host = scratch.host
        let bridge = scratch.deviceName("b", "br")
        let nameA = scratch.deviceName("t", "a")
        let nameB = scratch.deviceName("t", "b")
        try host.createBridge(named: bridge)
        let a = try TAPDevice(name: nameA)
        let b = try TAPDevice(name: nameB)
        try host.enslave(nameA, toBridge: bridge)
        try host.enslave(nameB, toBridge: bridge)
        for name in [bridge, nameA, nameB] { try host.setLink(named: name, up: true) }

        let macA = randomMAC()
        let token = (0..<8).map { _ in UInt8.random(in: 0...255) }
        let sent = (0..<6).map { i in
            TestFrames.ethernet(destination: .broadcast, source: macA, type: TestFrames.etherTypeExperimental, payload: token + [UInt8(i)])
        }
        for f in sent { try a.send(f) }

        // Collect through the batch call until all six arrived (host chatter is filtered out).
        var received: [[UInt8]] = []
        let slot = b.frameBufferSize
        var arena = [UInt8](repeating: 0, count: slot * 4)
        var lengths = [Int](repeating: 0, count: 4)
        let deadline = ContinuousClock.now + .seconds(5)
        var sawBatchOfMany = false
        while received.count < sent.count && ContinuousClock.now < deadline {
            guard try b.waitUntilReadable(timeoutMilliseconds: 500) else { continue }
            let n = try arena.withUnsafeMutableBytes { bytes in
                try lengths.withUnsafeMutableBufferPointer { try b.readFrames(into: bytes, slotSize: slot, lengths: $0) }
            }
            if n > 1 { sawBatchOfMany = true }
            for i in 0..<n {
                let f = Array(arena[(i * slot + b.vnetHeaderSize)..<(i * slot + lengths[i])])
                if TestFrames.etherType(f) == TestFrames.etherTypeExperimental, Array(f[14..<22]) == token { received.append(f) }
            }
        }
        #expect(received == sent)
        #expect(sawBatchOfMany)

        // The buffer-list form, on an empty queue, reads nothing and does not block or throw.
        var one = [UInt8](repeating: 0, count: slot)
        var two = [UInt8](repeating: 0, count: slot)
        let n = try one.withUnsafeMutableBytes { p1 in
            try two.withUnsafeMutableBytes { p2 in
                try [p1, p2].withUnsafeBufferPointer { buffers in
                    try lengths.withUnsafeMutableBufferPointer { try b.readFrames(into: buffers, lengths: $0) }
                }
            }
        }
        // Only host chatter could be waiting here; never one of ours.
        for i in 0..<n {
            let f = Array((i == 0 ? one : two)[b.vnetHeaderSize..<lengths[i]])
            #expect(TestFrames.etherType(f) != TestFrames.etherTypeExperimental)
        }
        var scratchBuffer = [UInt8](repeating: 0, count: slot)
        while try scratchBuffer.withUnsafeMutableBytes({ try b.read(into: $0) }) != nil {}
        #expect(try scratchBuffer.withUnsafeMutableBytes { try b.read(into: $0) } == nil)
    }
}
