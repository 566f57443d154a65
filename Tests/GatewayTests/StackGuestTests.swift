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
            let s = DiagnosticServices(driver: d, sourceLength: sourceLength)
            let hashChunk: (TCPFlowID, UnsafeRawBufferPointer) -> Void = { id, bytes in
                c.hashers[id, default: SHA256()].update(bufferPointer: bytes)
            }
            s.onDiscard = hashChunk
            s.onSource = hashChunk
            s.onClose = { id, r, sent in
                c.closed[id] = (r, sent)
                if let h = c.hashers.removeValue(forKey: id) { c.digests[id] = hex(h.finalize()) }
            }
            d.onEvent = { s.handle($0) }
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
        // Guest → stack: random bytes through the discard service.
        let guestHash = try fx.guest(
            "head -c \(size) /dev/urandom > /dev/shm/gw-up && sha256sum /dev/shm/gw-up | cut -d' ' -f1 && nc -N -w 30 10.0.2.2 9 < /dev/shm/gw-up; rm -f /dev/shm/gw-up",
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

/// Polls `condition` until it holds or `seconds` pass.
func waitFor(seconds: Double = 30, _ condition: () -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline { throw TimedOut() }
        usleep(20_000)
    }
}

struct TimedOut: Error {}
