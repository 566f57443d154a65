// The guest tools' own ceiling: the same guest commands over a plain kernel veth to a socat on
// the host end (10.0.3.1, an address on the veth created here). If these rows are not well above
// the stack's, the tool, not the stack, is what the stack rows measure.
import Foundation
import Gateway
import Link
import Wire

#if canImport(Glibc)
import Glibc
#endif

final class VethGuest {
    static let hostAddress = "10.0.3.1"
    static let guestAddress = "10.0.3.2"
    static let port = 5301

    let namespaceName: String
    let namespace: NetworkNamespace
    let hostLink: String
    let mtu: Int

    init(namespaceName: String, hostLink: String, guestLink: String, mtu: Int) throws {
        self.namespaceName = namespaceName
        self.hostLink = hostLink
        self.mtu = mtu
        Cleanup.shared.adopt(namespace: namespaceName)
        namespace = try NetworkNamespace.create(named: namespaceName)
        Cleanup.shared.adopt(hostLink: hostLink)
        let host = try NetlinkSocket()
        try host.createVethPair(named: hostLink, peer: guestLink, peerNamespace: namespace)
        try host.setMTU(of: hostLink, to: mtu)
        try host.addAddress(.v4(IPv4Address(10, 0, 3, 1)), prefixLength: 24, toLink: hostLink)
        try host.setLink(named: hostLink, up: true)
        let nl = try NetlinkSocket(in: namespace)
        try nl.setMTU(of: guestLink, to: mtu)
        try nl.setLink(named: "lo", up: true)
        try nl.addAddress(.v4(IPv4Address(10, 0, 3, 2)), prefixLength: 24, toLink: guestLink)
        try nl.setLink(named: guestLink, up: true)
    }

    /// One transfer between `command` in the guest and a socat on the host end: a sink for
    /// guest→host, a source of `bytes` zeros for host→guest. Wall time runs from starting the
    /// guest command until both ends have exited.
    func transfer(_ direction: Direction, bytes: Int, command: String, hostCPU: Int, guestCPU: Int, timeout: Double) throws -> Measurement {
        let listen = "TCP-LISTEN:\(Self.port),bind=\(Self.hostAddress),reuseaddr"
        let hostSide = direction == .guestToGateway
            ? ["socat", "-u", "-b", "1048576", listen, "OPEN:/dev/null"]
            : ["socat", "-u", "-b", "1048576", "OPEN:/dev/zero,readbytes=\(bytes)", listen]
        let server = try ChildProcess(["taskset", "-c", String(hostCPU)] + hostSide)
        defer { server.terminate() }
        try waitForListener(timeout: 5)
        let start = monotonicNanoseconds()
        let guest = try ChildProcess(["ip", "netns", "exec", namespaceName, "taskset", "-c", String(guestCPU), "sh", "-c", command])
        defer { guest.terminate() }
        let deadline = start + UInt64(timeout * 1e9)
        guard guest.wait(until: deadline), server.wait(until: deadline) else {
            throw BenchError("the veth transfer did not finish within \(Int(timeout)) s: \(command)")
        }
        let end = monotonicNanoseconds()
        guard guest.succeeded, server.succeeded else {
            throw BenchError("veth transfer failed (guest \(guest.statusText), host \(server.statusText)): \(command)")
        }
        let seconds = Double(end - start) / 1e9
        return Measurement(
            path: "veth-tools", mtu: mtu, direction: direction, bytes: bytes, seconds: seconds,
            gbps: Double(bytes) * 8 / seconds / 1e9, guestCommand: command, stack: nil)
    }

    /// Waits until the host's socat listens: a LISTEN row for 10.0.3.1:port in /proc/net/tcp
    /// (addresses there are the raw 32-bit value in hex, so 10.0.3.1 reads 0103000A).
    private func waitForListener(timeout: Double) throws {
        let needle = String(format: "0103000A:%04X", Self.port)
        let deadline = monotonicNanoseconds() + UInt64(timeout * 1e9)
        while monotonicNanoseconds() < deadline {
            if let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) {
                for line in table.split(separator: "\n") {
                    let f = line.split(separator: " ")
                    if f.count > 3 && f[1] == needle && f[3] == "0A" { return }
                }
            }
            usleep(2000)
        }
        throw BenchError("socat did not start listening on \(Self.hostAddress):\(Self.port)")
    }

    func tearDown() {
        Cleanup.shared.remove(hostLink: hostLink)
        Cleanup.shared.remove(namespace: namespaceName)
    }
}
