// The host ports published by every sandbox, shared by all shards. It follows Docker's
// libnetwork port allocator: per (address, protocol) with wildcard semantics, automatic ports
// searched round-robin over a range, and each port reserved against the OS by binding it.
import Synchronization
import Wire

/// Touched only on publish and unpublish (never per packet), under one lock. The lock is held
/// across the bind, so a port is checked, bound and recorded as one step: no other publish can
/// take it in between, and the bound socket becomes the listener, so no other process can either.
public final class PortAllocator: Sendable {
    /// What binding a candidate port against the OS came to.
    public enum BindOutcome: Sendable {
        /// The socket that now holds the port.
        case bound(Int32)
        /// EADDRINUSE: something outside this allocator holds it.
        case inUse
        /// EADDRNOTAVAIL: the address is not one of this host's, which is the caller's mistake,
        /// not the system's; the message names the address.
        case notLocal(String)
        /// Any other failure, with a message naming the address.
        case failed(String)
    }

    private struct Holder {
        var address: IPAddress
        var owner: String
    }

    private struct Slot: Hashable {
        var `protocol`: PortProtocol
        var port: UInt16
    }

    private struct State {
        /// Holders of each (protocol, port); a handful at most (one per address).
        var slots: [Slot: [Holder]] = [:]
        /// The last port handed out automatically, per protocol: the search resumes after it.
        var last: [PortProtocol: UInt16] = [:]
        var count = 0
    }

    public let range: AutoPortRange
    private let state = Mutex(State())

    public init(range: AutoPortRange = .system()) {
        self.range = range
    }

    /// Reserves a host port for `owner` (a sandbox ID). `port` nil or 0 picks one from the range.
    /// `bind` reserves it against the OS and returns the socket, which the caller then owns.
    /// - Throws: `.portInUse` naming the sandbox or "another process on this host" that holds an
    ///   explicitly requested port; `.exhausted` when no port of the range is free.
    public func reserve(
        address: IPAddress, protocol proto: PortProtocol, port: UInt16?, owner: String,
        bind: (UInt16) -> BindOutcome
    ) throws(GatewayError) -> (port: UInt16, socket: Int32) {
        try state.withLock { s throws(GatewayError) -> (port: UInt16, socket: Int32) in
            if let port, port != 0 {
                let wanted = HostBinding(address: address, port: port, protocol: proto)
                if let (held, owner) = Self.conflict(s, wanted) {
                    let with =
                        held == address
                        ? "" : " (it conflicts with \(HostBinding(address: held, port: port, protocol: proto)))"
                    throw GatewayError(
                        .portInUse, "host port \(wanted) is already published by sandbox '\(owner)'\(with)")
                }
                switch bind(port) {
                case .bound(let fd):
                    Self.record(&s, wanted, owner: owner)
                    return (port, fd)
                case .inUse:
                    throw GatewayError(.portInUse, "host port \(wanted) is in use by another process on this host")
                case .notLocal(let message):
                    throw GatewayError(.invalidArgument, message)
                case .failed(let message):
                    throw GatewayError(.system, message)
                }
            }
            let lo = range.ports.lowerBound, hi = range.ports.upperBound
            var candidate = s.last[proto].map { $0 >= hi || $0 < lo ? lo : $0 + 1 } ?? lo
            for _ in 0..<range.ports.count {
                let here = candidate
                candidate = here == hi ? lo : here + 1
                if range.reserved.contains(here) { continue }
                let wanted = HostBinding(address: address, port: here, protocol: proto)
                if Self.conflict(s, wanted) != nil { continue }
                switch bind(here) {
                case .bound(let fd):
                    Self.record(&s, wanted, owner: owner)
                    s.last[proto] = here
                    return (here, fd)
                case .inUse:
                    continue
                case .notLocal(let message):
                    throw GatewayError(.invalidArgument, message)
                case .failed(let message):
                    throw GatewayError(.system, message)
                }
            }
            throw GatewayError(
                .exhausted,
                "no free \(proto) host port on \(address) in \(lo)-\(hi): "
                    + "every port there is published, in use or reserved")
        }
    }

    /// Frees a port; a binding that is not held (by `owner`, when given) is ignored.
    public func release(_ binding: HostBinding, owner: String? = nil) {
        state.withLock { s in
            let slot = Slot(protocol: binding.protocol, port: binding.port)
            guard var holders = s.slots[slot],
                let i = holders.firstIndex(where: {
                    $0.address == binding.address && (owner == nil || $0.owner == owner)
                })
            else { return }
            holders.remove(at: i)
            s.slots[slot] = holders.isEmpty ? nil : holders
            s.count -= 1
        }
    }

    /// The sandbox a binding would collide with, if any.
    public func holder(of binding: HostBinding) -> String? {
        state.withLock { s in Self.conflict(s, binding)?.owner }
    }

    /// How many bindings are held.
    public var count: Int { state.withLock { $0.count } }

    /// A specific address collides with itself and with its family's wildcard; a wildcard
    /// collides with every address of its family. The families are separate because IPv6
    /// sockets are bound with IPV6_V6ONLY.
    private static func conflict(_ s: State, _ b: HostBinding) -> (address: IPAddress, owner: String)? {
        guard let holders = s.slots[Slot(protocol: b.protocol, port: b.port)] else { return nil }
        for h in holders where h.address.sameFamily(as: b.address) {
            if h.address == b.address || h.address.isWildcard || b.address.isWildcard { return (h.address, h.owner) }
        }
        return nil
    }

    private static func record(_ s: inout State, _ b: HostBinding, owner: String) {
        s.slots[Slot(protocol: b.protocol, port: b.port), default: []].append(Holder(address: b.address, owner: owner))
        s.count += 1
    }
}
