// A TAP moved into a fresh namespace and configured there: the kernel inside answers ARP and
// ping written into the fd, and reports the offloads TUNSETOFFLOAD turned on.
import GatewayTestSupport
import Foundation
import Testing
import Wire

@testable import Link

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct TAPNamespaceTests {
    /// The namespace's kernel answers an ARP request and an ICMP echo request written into the
    /// TAP fd, with either virtio-net header layout.
    @Test(arguments: [10, 12])
    func kernelAnswersARPAndPingThroughTheTAP(vnetHeaderSize: Int) throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let ns = try scratch.namespace()
        let name = scratch.deviceName("t", "a")

        var options = TAPDevice.Options()
        options.vnetHeaderSize = vnetHeaderSize
        let tap = try TAPDevice(name: name, options: options)
        #expect(try tap.currentVnetHeaderSize() == vnetHeaderSize)
        #expect(tap.ifindex > 0)
        #expect(try scratch.host.link(named: name).index == tap.ifindex)

        try scratch.host.moveLink(named: name, to: ns)
        #expect(throws: LinkError.self) { try scratch.host.link(named: name) }

        let x = UInt8.random(in: 1...254)
        let ours = IPv4Address(10, 199, x, 1)
        let theirs = IPv4Address(10, 199, x, 2)
        let ourMAC = randomMAC()
        let inside = try NetlinkSocket(in: ns)
        try inside.addAddress(.v4(theirs), prefixLength: 24, toLink: name)
        try inside.setLink(named: name, up: true)
        let info = try inside.link(named: name)
        #expect(info.isUp)
        #expect(info.kind == "tun")
        let addresses = try inside.addresses(ofLink: name)
        #expect(addresses.contains { $0.address == .v4(theirs) && $0.prefixLength == 24 && $0.linkIndex == info.index })
        let tapMAC = try #require(info.macAddress)

        // The kernel may ask for our MAC before replying; answer so the echo reply can leave.
        let answerARP = { (frame: [UInt8]) throws in
            if let a = TestFrames.parseARP(frame), a.operation == 1, a.targetIP == ours {
                try tap.send(
                    TestFrames.ethernet(
                        destination: a.senderMAC, source: ourMAC, type: TestFrames.etherTypeARP,
                        payload: TestFrames.arp(operation: 2, senderMAC: ourMAC, senderIP: ours, targetMAC: a.senderMAC, targetIP: a.senderIP)))
            }
        }

        // ARP: who has .2? The reply comes from the TAP's MAC, to ours.
        try tap.send(TestFrames.arpRequest(from: ourMAC, ip: ours, asking: theirs))
        let arpFrame = try #require(
            try tap.receive(other: answerARP) { f in TestFrames.parseARP(f).map { $0.operation == 2 && $0.senderIP == theirs } ?? false })
        let arp = try #require(TestFrames.parseARP(arpFrame))
        #expect(TestFrames.readMAC(arpFrame, 0) == ourMAC)
        #expect(TestFrames.readMAC(arpFrame, 6) == tapMAC)
        #expect(arp.senderMAC == tapMAC)
        #expect(arp.targetMAC == ourMAC)
        #expect(arp.targetIP == ours)

        // ICMP echo: id, sequence and payload come back, with valid checksums.
        let identifier = UInt16.random(in: 1...0xFFFF)
        let sequence = UInt16.random(in: 1...0xFFFF)
        let payload = (0..<48).map { _ in UInt8.random(in: 0...255) }
        let echo = TestFrames.icmpEchoRequest(identifier: identifier, sequence: sequence, payload: payload)
        try tap.send(
            TestFrames.ethernet(
                destination: tapMAC, source: ourMAC, type: TestFrames.etherTypeIPv4,
                payload: TestFrames.ipv4(source: ours, destination: theirs, protocol: 1, identification: 1, payload: echo)))
        let replyFrame = try #require(
            try tap.receive(other: answerARP) { f in
                guard let ip = TestFrames.parseIPv4(f) else { return false }
                return ip.proto == 1 && ip.source == theirs && f[ip.payload.lowerBound] == 0
            })
        let ip = try #require(TestFrames.parseIPv4(replyFrame))
        #expect(ip.destination == ours)
        #expect(TestFrames.readMAC(replyFrame, 0) == ourMAC)
        #expect(TestFrames.verifies(replyFrame[ip.header]))
        let icmp = Array(replyFrame[ip.payload])
        #expect(icmp.count == 8 + payload.count)
        #expect(icmp[0] == 0 && icmp[1] == 0)
        #expect(TestFrames.read16(icmp, 4) == identifier)
        #expect(TestFrames.read16(icmp, 6) == sequence)
        #expect(Array(icmp[8...]) == payload)
        #expect(TestFrames.verifies(replyFrame[ip.payload]))

        // TUNSETOFFLOAD(CSUM | TSO4 | TSO6) shows as TSO on, seen from inside the namespace.
        let features = try TestHost.run(["ip", "netns", "exec", try #require(ns.name), "ethtool", "-k", name])
        #expect(features.contains("tcp-segmentation-offload: on"))
        #expect(features.contains("tx-checksumming: on"))
    }

    /// A TAP created directly inside a namespace never appears on the host.
    @Test func tapCreatedInsideANamespace() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let ns = try NetworkNamespace.createUnnamed()
        let name = scratch.deviceName("t", "n")
        var options = TAPDevice.Options()
        options.namespace = ns
        let tap = try TAPDevice(name: name, options: options)
        let inside = try NetlinkSocket(in: ns)
        #expect(try inside.link(named: name).index == tap.ifindex)
        #expect(throws: LinkError.self) { try scratch.host.link(named: name) }
    }

    /// Without offloads the same device reports TSO off: the ethtool check above means something.
    @Test func noOffloadsMeansNoTSO() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let ns = try scratch.namespace()
        let name = scratch.deviceName("t", "o")
        var options = TAPDevice.Options()
        options.offloads = []
        let tap = try TAPDevice(name: name, options: options)
        try scratch.host.moveLink(named: name, to: ns)
        let features = try TestHost.run(["ip", "netns", "exec", try #require(ns.name), "ethtool", "-k", name])
        #expect(features.contains("tcp-segmentation-offload: off"))
        withExtendedLifetime(tap) {}
    }
}
