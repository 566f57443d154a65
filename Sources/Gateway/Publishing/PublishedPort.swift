// One published port as its shard holds it: the host socket (a TCP listener or a UDP socket)
// that the allocator bound, registered with the shard's loop, and where it leads in the guest.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import NetStack

final class PublishedPort {
    unowned let relay: IngressRelay
    let binding: HostBinding
    let guestPort: UInt16
    let preserveSource: Bool
    private(set) var fd: Int32
    private var resumeTimer: EventLoop.TimerID?
    /// Held against the sandbox's descriptor budget until the socket closes.
    var descriptor: DescriptorSlot?

    init(relay: IngressRelay, binding: HostBinding, guestPort: UInt16, preserveSource: Bool, socket: Int32) {
        self.relay = relay
        self.binding = binding
        self.guestPort = guestPort
        self.preserveSource = preserveSource
        fd = socket
    }

    func start() throws(GatewayError) {
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
        guard fd >= 0, resumeTimer == nil else { return }
        relay.loop.modify(fd: fd, events: 0)
        resumeTimer = relay.loop.schedule(at: monotonicNanoseconds() + d.nanoseconds) { [weak self] in
            guard let self, self.fd >= 0 else { return }
            self.resumeTimer = nil
            self.relay.loop.modify(fd: self.fd, events: EPOLLIN.rawValue)
        }
    }

    /// Closes the socket, which frees the port in the OS; connections are the relay's business.
    func close() {
        if let t = resumeTimer { relay.loop.cancel(t) }
        resumeTimer = nil
        guard fd >= 0 else { return }
        relay.loop.unregister(fd: fd)
        Glibc.close(fd)
        fd = -1
        descriptor = nil
    }
}
