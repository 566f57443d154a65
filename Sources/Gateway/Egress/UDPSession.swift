// One guest UDP flow (guest endpoint → destination) over a connected host socket: datagrams out,
// replies back to the guest as if from the address it sent to; ends after an idle timeout.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Link
import NetStack
import SystemPackage
import Wire

final class UDPSession {
    unowned let relay: EgressRelay
    let key: FlowKey
    /// The connected socket; nil once closed.
    private var socket: OwnedDescriptor?
    private var idle: IdleTimer?
    /// Held against the sandbox's descriptor budget until the socket closes.
    var descriptor: DescriptorSlot?

    init?(relay: EgressRelay, key: FlowKey, destination: IPAddress) {
        self.relay = relay
        self.key = key
        let address = SocketAddress(destination, port: key.remotePort)
        guard let s = try? HostSocket.open(family: address.family, type: Int32(SOCK_DGRAM.rawValue)) else { return nil }
        socket = HostSocket.connectAndWatch(s, to: address, on: relay.loop) { [unowned self] in self.receive() }
        guard socket != nil else { return nil }
        idle = IdleTimer(loop: relay.loop, timeout: relay.limits.udpIdleTimeout) { [weak self] in
            guard let self else { return }
            self.close(.idle)
            self.relay.udpExpired(self.key)
        }
    }

    /// The start of the last datagram sent, to quote in a port-unreachable to the guest.
    private var lastPrefix: [UInt8] = []
    /// Bytes guest → destination and back, and when the session began, for the flow log.
    private var bytesOut: UInt64 = 0
    private var bytesIn: UInt64 = 0
    private let openedAt = monotonicNanoseconds()

    func send(_ payload: [UInt8]) {
        lastPrefix = Array(payload.prefix(8))
        idle?.lastActivity = monotonicNanoseconds()
        guard let fd = socket?.rawValue else { return }
        let n = payload.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n >= 0 {
            bytesOut &+= UInt64(n)
            relay.udpSent()
        }
    }

    private func receive() {
        let now = monotonicNanoseconds()
        let buffer = relay.datagramBuffer
        // A burst of replies per wake-up, each one datagram; the number is read again each time,
        // as handing a reply to the stack may end the session.
        for _ in 0..<64 {
            guard let fd = socket?.rawValue else { break }
            let n = recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            if n < 0 {
                // The host answered with ICMP port unreachable: pass it on, as a router would.
                if Errno.last == .connectionRefused {
                    relay.stack.sendUDPUnreachable(key, payloadPrefix: lastPrefix, prohibited: false)
                }
                break
            }
            // Over the sandbox's rate the reply is dropped, as a congested link would.
            guard relay.rates.admitDatagram(.fromHost, size: n, now: now) else { continue }
            idle?.lastActivity = now
            bytesIn &+= UInt64(n)
            relay.udpReceived()
            relay.stack.sendUDP(key, payload: UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        }
        relay.driver.afterWork()
    }

    /// Ends the session: `ending` for the flow log (idle timeout, or the gateway closing it).
    func close(_ ending: FlowEvent.Ending = .closedByGateway) {
        if socket != nil {
            relay.audit?.ended(
                key, .udp, bytesOut: bytesOut, bytesIn: bytesIn, openedAt: openedAt, now: monotonicNanoseconds(), ending)
        }
        idle?.cancel()
        idle = nil
        HostSocket.unwatchAndClose(&socket, on: relay.loop)
        descriptor = nil
    }
}
