// ICMP echo from a guest to an address beyond the gateway, carried by a host ping socket
// (SOCK_DGRAM/IPPROTO_ICMP, or a raw socket where ping sockets are not allowed for our group):
// requests go out with the guest's sequence numbers, replies come back under its identifier.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Link
import NetStack
import Wire

final class EchoSession {
    struct Key: Hashable {
        var guest: IPAddress
        var destination: IPAddress
        var identifier: UInt16
    }

    unowned let relay: EgressRelay
    let key: Key
    /// The connected socket; nil once closed.
    private var socket: OwnedDescriptor?
    /// Raw sockets see every echo reply on the host: ours carry this identifier.
    private let raw: Bool
    private let rawIdentifier = UInt16.random(in: 1...UInt16.max)
    private let v6: Bool
    private var idle: IdleTimer?
    /// Held against the sandbox's descriptor budget until the socket closes.
    var descriptor: DescriptorSlot?

    init?(relay: EgressRelay, key: Key, hostDestination: IPAddress) {
        self.relay = relay
        self.key = key
        v6 = hostDestination.isIPv6
        let family = v6 ? AF_INET6 : AF_INET
        let proto = v6 ? Int32(IPPROTO_ICMPV6) : Int32(IPPROTO_ICMP)
        let s: OwnedDescriptor
        if let ping = try? HostSocket.open(family: family, type: Int32(SOCK_DGRAM.rawValue), protocol: proto) {
            s = ping
            raw = false
        } else if let rawSocket = relay.openRawEchoSocket(family) {
            s = rawSocket
            raw = true
        } else {
            return nil
        }
        let address = SocketAddress(hostDestination, port: 0)
        socket = HostSocket.connectAndWatch(s, to: address, on: relay.loop) { [unowned self] in self.receive() }
        guard socket != nil else { return nil }
        idle = IdleTimer(loop: relay.loop, timeout: relay.limits.echoIdleTimeout) { [weak self] in
            guard let self else { return }
            self.close()
            self.relay.echoExpired(self.key)
        }
    }

    func send(sequence: UInt16, payload: [UInt8]) {
        idle?.lastActivity = monotonicNanoseconds()
        var message = [UInt8](repeating: 0, count: 8 + payload.count)
        message[0] = v6 ? 128 : 8
        let id = raw ? rawIdentifier : key.identifier  // a ping socket replaces it with its own
        message[4] = UInt8(id >> 8)
        message[5] = UInt8(id & 0xFF)
        message[6] = UInt8(sequence >> 8)
        message[7] = UInt8(sequence & 0xFF)
        message.replaceSubrange(8..., with: payload)
        if raw && !v6 {
            // Raw ICMPv4 carries our checksum; the kernel fills ICMPv6's (and every ping socket's).
            let c = message.withUnsafeBytes { InternetChecksum.of($0) }
            message[2] = UInt8(c >> 8)
            message[3] = UInt8(c & 0xFF)
        }
        guard let fd = socket?.rawValue else { return }
        _ = message.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
    }

    private func receive() {
        let now = monotonicNanoseconds()
        let buffer = relay.datagramBuffer
        for _ in 0..<64 {
            guard let fd = socket?.rawValue else { break }
            let n = recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            if n < 0 { break }
            var b = CheckedReader(UnsafeRawBufferPointer(rebasing: buffer[..<n]), layer: "icmp")
            if raw && !v6 {
                // A raw IPv4 socket hands over the IP header too.
                guard b.count >= 20, let versionIHL = try? b.u8(0) else { continue }
                let ihl = Int(versionIHL & 0x0F) * 4
                guard b.count >= ihl + 8, let message = try? b.reader(ihl, b.count - ihl) else { continue }
                b = message
            }
            guard b.count >= 8, let type = try? b.u8(0), type == (v6 ? 129 : 0),
                let identifier = try? b.be16(4), let sequence = try? b.be16(6), let payload = try? b.bytes(from: 8)
            else { continue }
            if raw && identifier != rawIdentifier { continue }
            idle?.lastActivity = now
            relay.echoReplied()
            relay.stack.sendEchoReply(to: key.guest, from: key.destination, identifier: key.identifier, sequence: sequence,
                                      payload: payload)
        }
        relay.driver.afterWork()
    }

    func close() {
        idle?.cancel()
        idle = nil
        HostSocket.unwatchAndClose(&socket, on: relay.loop)
        descriptor = nil
    }
}
