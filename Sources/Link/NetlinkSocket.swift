// A route-netlink (NETLINK_ROUTE) socket through libnl, bound for life to the network namespace
// it was opened in. Device, address and route operations are in the NetlinkSocket+… files.
import CNetlink

/// A libnl socket speaking rtnetlink to one namespace's kernel tables.
///
/// Single owner: libnl sockets are not thread-safe (one sequence counter, one receive buffer),
/// so the type is not Sendable. Keep each socket in one place, a control-plane task or one
/// thread, and open another for another place; they are cheap.
///
/// A socket belongs to the namespace it was created in, whichever thread later uses it, so
/// `init(in:)` creates it on a short-lived thread inside the namespace and the caller's own
/// thread never changes namespace.
public final class NetlinkSocket {
    let handle: OpaquePointer
    /// Names the namespace in error messages: its `ip netns` name, or "host".
    public let namespaceLabel: String

    private init(handle: OpaquePointer, namespaceLabel: String) {
        self.handle = handle
        self.namespaceLabel = namespaceLabel
    }

    deinit {
        // nl_socket_free also closes the fd.
        nl_socket_free(handle)
    }

    /// Opens a socket in the calling thread's namespace (the host's, for an ordinary thread).
    public convenience init() throws(LinkError) {
        self.init(handle: try NetlinkSocket.connect(label: "host"), namespaceLabel: "host")
    }

    /// Opens a socket inside `namespace`.
    public convenience init(in namespace: NetworkNamespace) throws(LinkError) {
        let label = namespace.description
        let handle = try namespace.perform { () throws(LinkError) -> OpaquePointer in
            try NetlinkSocket.connect(label: label)
        }
        self.init(handle: handle, namespaceLabel: label)
    }

    /// Opens a socket inside the namespace `ip netns` knows as `name`.
    /// - Throws: `.noSuchNamespace` when there is none.
    public convenience init(namespaceNamed name: String) throws(LinkError) {
        try self.init(in: NetworkNamespace(named: name))
    }

    private static func connect(label: String) throws(LinkError) -> OpaquePointer {
        guard let sk = nl_socket_alloc() else { throw NetlinkObject.outOfMemory("open netlink socket", label) }
        let rc = nl_connect(sk, NETLINK_ROUTE)
        if rc < 0 {
            nl_socket_free(sk)
            throw LinkError(netlink: rc, operation: "open netlink socket", subject: label)
        }
        return sk
    }

    /// Throws the LinkError for a libnl return code below zero.
    func check(_ rc: Int32, _ operation: String, _ subject: String, exists: LinkError.Code = .nameTaken) throws(LinkError) {
        if rc < 0 { throw LinkError(netlink: rc, operation: operation, subject: subject, exists: exists) }
    }
}

@available(*, unavailable, message: "libnl sockets are not thread-safe: open one per owner")
extension NetlinkSocket: Sendable {}
