// The stack against a real Linux kernel guest in a namespace: ping, the diagnostic services,
// and gigabyte transfers each way whose SHA-256 must match on both ends.
import Crypto
import Foundation
import Gateway
import GatewayTestSupport
import NetStack
import Testing
import Wire

/// Box for results the loop thread produces and the test thread reads after waiting.
final class Collected: @unchecked Sendable {
    var hashers: [TCPFlowID: SHA256] = [:]
    var digests: [TCPFlowID: String] = [:]
    var closed: [TCPFlowID: (received: Int, sent: Int)] = [:]
}

func hex(_ d: SHA256.Digest) -> String { d.map { String(format: "%02x", $0) }.joined() }

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct StackGuestTests {
    /// Diagnostic services on the fixture's stack, with SHA-256 over what they see.
    static func serve(_ fx: GuestFixture, sourceLength: Int) -> (DiagnosticServices, Collected) {
        let c = Collected()
        let d = fx.driver
        let services = fx.onLoop {
            let s = DiagnosticServices(driver: d.value, sourceLength: sourceLength)
            let hashChunk: (TCPFlowID, UnsafeRawBufferPointer) -> Void = { id, bytes in
                c.hashers[id, default: SHA256()].update(bufferPointer: bytes)
            }
            s.onDiscard = hashChunk
            s.onSource = hashChunk
            s.onClose = { id, r, sent in
                c.closed[id] = (r, sent)
                if let h = c.hashers.removeValue(forKey: id) { c.digests[id] = hex(h.finalize()) }
            }
            d.value.onEvent = { s.handle($0) }
            return UncheckedBox(s)
        }
        return (services.value, c)
    }

    @Test func pingTheGateway() throws {
        let fx = try GuestFixture()
        defer { fx.tearDown() }
        let out = try fx.guest("ping -c 3 -i 0.2 -W 2 10.0.2.2")
        #expect(out.contains("3 received"))
    }

    @Test func echoAndRefusedPort() throws {
        let fx = try GuestFixture()
        defer { fx.tearDown() }
        _ = Self.serve(fx, sourceLength: 0)
        let out = try fx.guest("printf 'hello through the stack' | nc -N -w 5 10.0.2.2 7")
        #expect(out == "hello through the stack")
        // A port nobody serves is refused at once, not left to time out.
        let start = Date()
        #expect(throws: (any Error).self) { try fx.guest("nc -z -w 5 10.0.2.2 1234") }
        #expect(Date().timeIntervalSince(start) < 3)
    }

    @Test(arguments: [1500, 65520])
    func gigabyteEachWay(mtu: Int) throws {
        let fx = try GuestFixture(mtu: mtu)
        defer { fx.tearDown() }
        let size = 1 << 30
        let (_, collected) = Self.serve(fx, sourceLength: size)
        // Guest → stack: random bytes through the discard service, from a file of this run's own
        // (the guest shares the host's /dev/shm with every other run on the machine).
        let upload = "/dev/shm/gw-up-\(fx.scratch.tag)"
        defer { try? FileManager.default.removeItem(atPath: upload) }
        let guestHash = try fx.guest(
            "head -c \(size) /dev/urandom > \(upload) && sha256sum \(upload) | cut -d' ' -f1 && nc -N -w 30 10.0.2.2 9 < \(upload); rm -f \(upload)",
            timeout: 300
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        try waitFor { fx.onLoop { collected.digests.count == 1 } }
        let up = fx.onLoop { (collected.digests.values.first ?? "", collected.closed.values.first?.received ?? 0) }
        #expect(up.1 == size)
        #expect(up.0 == guestHash, "guest → stack bytes differ")

        // Stack → guest: the byte source.
        let downHash = try fx.guest("nc -d -w 30 10.0.2.2 19 | sha256sum | cut -d' ' -f1", timeout: 300)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try waitFor { fx.onLoop { collected.digests.count == 2 } }
        let sent = fx.onLoop { collected.digests.values.filter { $0 != guestHash } }
        #expect(sent.count == 1)
        #expect(sent.first == downHash, "stack → guest bytes differ")
    }
}

struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct StackGuestAddressingTests {
    /// busybox udhcpc in the guest gets its address, router, DNS and MTU from the stack's DHCP server.
    @Test func udhcpcGetsLeaseFromTheStack() throws {
        let fx = try GuestFixture(mtu: 1400, staticAddress: false)
        defer { fx.tearDown() }
        let script = "/tmp/gw-udhcpc-\(fx.scratch.tag).sh"
        let lease = "/tmp/gw-udhcpc-\(fx.scratch.tag).env"
        try """
        #!/bin/sh
        # Records what udhcpc was given and applies the address, as a distribution's script would.
        [ "$1" = bound ] || exit 0
        echo "ip=$ip subnet=$subnet router=$router dns=$dns mtu=$mtu lease=$lease" > \(lease)
        ip addr add "$ip/$mask" dev "$interface"
        ip route add default via "$router" dev "$interface"
        """.write(toFile: script, atomically: true, encoding: .utf8)
        defer {
            try? FileManager.default.removeItem(atPath: script)
            try? FileManager.default.removeItem(atPath: lease)
        }
        chmod(script, 0o755)
        try fx.guest("busybox udhcpc -i \(fx.tapName) -n -q -f -t 5 -T 1 -s \(script) -O mtu", timeout: 30)
        let got = try String(contentsOfFile: lease, encoding: .utf8)
        #expect(got.contains("ip=10.0.2.15 "))
        #expect(got.contains("subnet=255.255.255.0"))
        #expect(got.contains("router=10.0.2.2"))
        #expect(got.contains("dns=10.0.2.2"))
        #expect(got.contains("mtu=1400"))
        // The address works: the gateway answers a ping from it.
        #expect(try fx.guest("ping -c 1 -W 2 10.0.2.2").contains("1 received"))
    }

    /// SLAAC from the stack's router advertisement, then ping6 to the gateway's address.
    @Test func slaacAndPing6() throws {
        let fx = try GuestFixture()
        defer { fx.tearDown() }
        try fx.guest("sysctl -qw net.ipv6.conf.\(fx.tapName).accept_ra=2; ip link set \(fx.tapName) down; ip link set \(fx.tapName) up")
        // The kernel solicits a router when the link comes up; wait for the SLAAC address.
        var addr = ""
        _ = try eventually(every: 0.1) {
            addr = try fx.guest("ip -6 -o addr show dev \(fx.tapName) scope global")
            return addr.contains("fd00::2:")
        }
        #expect(addr.contains("fd00::2:"), "no SLAAC address: \(addr)")
        let out = try fx.guest("ping -6 -c 2 -i 0.2 -W 2 fd00:0:0:2::2")
        #expect(out.contains("2 received"))
        let route = try fx.guest("ip -6 route show default")
        #expect(route.contains("via fe80::"))
    }
}

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct StackGuestFaultTests {
    /// 5% loss, 5% reordering and 1% duplication in both directions at the frame boundary: the
    /// same bytes arrive both ways, and the transfers finish.
    @Test func transfersSurviveABadLink() throws {
        let size = Int(ProcessInfo.processInfo.environment["GW_FAULT_BYTES"] ?? "") ?? 1 << 30
        let fx = try GuestFixture { cfg in
            cfg.faults = try! FaultConfiguration(parsing: "loss=0.05,reorder=0.05,duplicate=0.01,seed=42")
        }
        defer { fx.tearDown() }
        let (_, collected) = StackGuestTests.serve(fx, sourceLength: size)
        let start = Date()
        // A file of this run's own: /dev/shm is shared with every other run on the machine.
        let upload = "/dev/shm/gw-fault-\(fx.scratch.tag)"
        defer { try? FileManager.default.removeItem(atPath: upload) }
        let guestHash = try fx.guest(
            "head -c \(size) /dev/urandom > \(upload) && sha256sum \(upload) | cut -d' ' -f1 && nc -N -w 60 10.0.2.2 9 < \(upload); rm -f \(upload)",
            timeout: 600
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        try waitFor(seconds: 60) { fx.onLoop { collected.digests.count == 1 } }
        let up = fx.onLoop { collected.digests.values.first ?? "" }
        #expect(up == guestHash, "guest → stack bytes differ under faults")
        let upSeconds = Date().timeIntervalSince(start)

        let mid = Date()
        let downHash = try fx.guest("nc -d -w 60 10.0.2.2 19 | sha256sum | cut -d' ' -f1", timeout: 600)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try waitFor(seconds: 60) { fx.onLoop { collected.digests.count == 2 } }
        let sent = fx.onLoop { collected.digests.values.filter { $0 != guestHash } }
        #expect(sent.first == downHash, "stack → guest bytes differ under faults")
        let downSeconds = Date().timeIntervalSince(mid)
        let injected = fx.onLoop { (fx.driver.value.stack.faults?.inputCounters, fx.driver.value.stack.faults?.outputCounters) }
        let c = fx.onLoop { fx.driver.value.stack.counters }
        print("recovery: \(c.tcpRetransmitTimeouts) timeouts, \(c.tcpFastRecoveries) fast recoveries, \(c.tcpTailProbes) tail probes, \(c.tcpRetransmittedSegments) segments resent")
        print("faulty link, \(size >> 20) MiB: up \(String(format: "%.1f", upSeconds)) s, down \(String(format: "%.1f", downSeconds)) s; injected in \(String(describing: injected.0)) out \(String(describing: injected.1))")
    }
}
