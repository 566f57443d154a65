// One published port as its shard holds it: the host socket (a TCP listener or a UDP socket)
// that the allocator bound, registered with the shard's loop, and where it leads in the guest.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Link
import NetStack

final class PublishedPort {
    unowned let relay: IngressRelay
    let binding: HostBinding
    let guestPort: UInt16
    let preserveSource: Bool
    /// The listener or UDP socket; nil once closed.
    private var socket: OwnedDescriptor?
    private var resumeTimer: EventLoop.TimerID?
    /// Held against the sandbox's descriptor budget until the socket closes.
    var descriptor: DescriptorSlot?

    init(relay: IngressRelay, binding: HostBinding, guestPort: UInt16, preserveSource: Bool,
         socket: consuming OwnedDescriptor) {
        self.relay = relay
        self.binding = binding
        self.guestPort = guestPort
        self.preserveSource = preserveSource
        self.socket = .some(socket)
    }

    /// The socket's number while it is open, for accept(2), recvfrom(2) and sendto(2).
    var fd: Int32? { socket?.rawValue }

    func start() throws(GatewayError) {
        guard let fd else { return }
        try relay.loop.register(fd: fd, events: EPOLLIN.rawValue) { [unowned self] _ in
            withExtendedLifetime(self) {
                switch self.binding.protocol {
                case .tcp: self.relay.acceptConnections(on: self)
                case .udp: self.relay.receiveDatagrams(on: self)
                }
            }
        }
    }

    /// Stops watching the socket for a while: accept(2) failing for want of descriptors would
    /// otherwise wake the loop again at once, for as long as the shortage lasts.
    func pause(for d: Duration) {
        guard let fd, resumeTimer == nil else { return }
        relay.loop.modify(fd: fd, events: 0)
        resumeTimer = relay.loop.schedule(at: monotonicNanoseconds() + d.nanoseconds) { [weak self] in
            guard let self, let fd = self.fd else { return }
            self.resumeTimer = nil
            self.relay.loop.modify(fd: fd, events: EPOLLIN.rawValue)
        }
    }

    /// Closes the socket, which frees the port in the OS; connections are the relay's business.
    func close() {
        if let t = resumeTimer { relay.loop.cancel(t) }
        resumeTimer = nil
        guard socket != nil else { return }
        HostSocket.unwatchAndClose(&socket, on: relay.loop)
        descriptor = nil
    }
}
