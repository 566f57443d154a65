// The routing table: exact and wildcard lookups, removal, per-sandbox listing, and the JSON rows
// `gatewayctl routes` prints.
import Foundation
import Gateway
import Testing
import Wire

struct RoutingTableTests {
    static func b(_ ip: String, _ port: UInt16, _ proto: PortProtocol = .tcp) -> HostBinding {
        HostBinding(address: IPAddress(ip)!, port: port, protocol: proto)
    }

    @Test func lookupIsExactThenTheFamilyWildcard() {
        let t = RoutingTable()
        #expect(t.insert(Self.b("127.0.0.1", 8080), .init(sandbox: "a", guestPort: 80)))
        #expect(t.insert(Self.b("0.0.0.0", 9090), .init(sandbox: "b", guestPort: 90)))
        #expect(t.insert(Self.b("::", 9090), .init(sandbox: "c", guestPort: 91)))
        #expect(
            !t.insert(Self.b("127.0.0.1", 8080), .init(sandbox: "z", guestPort: 1)), "a taken binding is not replaced")

        #expect(t.lookup(Self.b("127.0.0.1", 8080))?.sandbox == "a")
        #expect(t.lookup(Self.b("127.0.0.1", 8080, .udp)) == nil)
        #expect(t.lookup(Self.b("127.0.0.2", 8080)) == nil)
        #expect(t.lookup(Self.b("192.0.2.1", 9090))?.sandbox == "b")
        #expect(t.lookup(Self.b("::1", 9090))?.sandbox == "c")
        #expect(t.lookup(Self.b("::1", 8080)) == nil)

        #expect(t.remove(Self.b("0.0.0.0", 9090))?.sandbox == "b")
        #expect(t.lookup(Self.b("192.0.2.1", 9090)) == nil)
        #expect(t.remove(Self.b("0.0.0.0", 9090)) == nil)
        #expect(t.count == 2)
    }

    @Test func listsRoutesSortedAndPerSandbox() throws {
        let t = RoutingTable()
        t.insert(Self.b("127.0.0.1", 9000, .udp), .init(sandbox: "b", guestPort: 53))
        t.insert(Self.b("127.0.0.1", 8080), .init(sandbox: "b", guestPort: 80, preserveSource: true))
        t.insert(Self.b("::1", 8080), .init(sandbox: "a", guestPort: 80))
        #expect(
            t.routes() == [
                Route(hostIP: "::1", hostPort: 8080, protocol: "tcp", sandbox: "a", guestPort: 80),
                Route(hostIP: "127.0.0.1", hostPort: 8080, protocol: "tcp", sandbox: "b", guestPort: 80),
                Route(hostIP: "127.0.0.1", hostPort: 9000, protocol: "udp", sandbox: "b", guestPort: 53),
            ])
        #expect(t.entries(sandbox: "b").count == 2)
        #expect(t.entries(sandbox: "b").contains { $0.target.preserveSource })
        #expect(t.entries(sandbox: "nobody").isEmpty)

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(t.routes()[0]), as: UTF8.self)
        #expect(json == #"{"guestPort":80,"hostIP":"::1","hostPort":8080,"protocol":"tcp","sandbox":"a"}"#)
        #expect(try JSONDecoder().decode([Route].self, from: encoder.encode(t.routes())) == t.routes())
    }

    @Test func concurrentWritersKeepEveryRoute() async {
        let t = RoutingTable()
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                group.addTask {
                    for p in 0..<250 {
                        t.insert(
                            Self.b("127.0.0.1", UInt16(1000 + i * 250 + p)), .init(sandbox: "s\(i)", guestPort: 80))
                    }
                }
            }
        }
        #expect(t.count == 2000)
        #expect(t.routes().count == 2000)
    }
}
