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
    /// Where libnl's error callback leaves the kernel's errno and extended-ack text.
    private let failure: UnsafeMutablePointer<gw_nl_failure>
    /// Names the namespace in error messages: its `ip netns` name, or "host".
    public let namespaceLabel: String

    private init(connection: Connection, namespaceLabel: String) {
        self.handle = connection.handle
        self.failure = connection.failure
        self.namespaceLabel = namespaceLabel
    }

    deinit {
        // nl_socket_free also closes the fd; the callback's target goes after the socket.
        nl_socket_free(handle)
        failure.deallocate()
    }

    /// Opens a socket in the calling thread's namespace (the host's, for an ordinary thread).
    public convenience init() throws(LinkError) {
        self.init(connection: try NetlinkSocket.connect(label: "host"), namespaceLabel: "host")
    }

    /// Opens a socket inside `namespace`.
    public convenience init(in namespace: NetworkNamespace) throws(LinkError) {
        let label = namespace.description
        let connection = try namespace.perform { () throws(LinkError) -> Connection in
            try NetlinkSocket.connect(label: label)
        }
        self.init(connection: connection, namespaceLabel: label)
    }

    /// Opens a socket inside the namespace `ip netns` knows as `name`.
    /// - Throws: `.noSuchNamespace` when there is none.
    public convenience init(namespaceNamed name: String) throws(LinkError) {
        try self.init(in: NetworkNamespace(named: name))
    }

    private struct Connection {
        let handle: OpaquePointer
        let failure: UnsafeMutablePointer<gw_nl_failure>
    }

    private static func connect(label: String) throws(LinkError) -> Connection {
        guard let sk = nl_socket_alloc() else { throw NetlinkObject.outOfMemory("open netlink socket", label) }
        var rc = nl_connect(sk, NETLINK_ROUTE)
        if rc < 0 {
            nl_socket_free(sk)
            throw LinkError(netlink: rc, operation: "open netlink socket", subject: label)
        }
        let failure = UnsafeMutablePointer<gw_nl_failure>.allocate(capacity: 1)
        failure.initialize(to: gw_nl_failure())
        rc = gw_nl_record_failures(sk, failure)
        if rc < 0 {
            nl_socket_free(sk)
            failure.deallocate()
            throw LinkError(netlink: rc, operation: "open netlink socket", subject: label)
        }
        return Connection(handle: sk, failure: failure)
    }

    /// Throws the LinkError for a libnl return code below zero, with the kernel's own errno and
    /// message when the failure came from the kernel. Every libnl call's result passes through
    /// here, which also clears the record for the next request.
    func check(
        _ rc: Int32, _ operation: String, _ subject: String, exists: LinkError.Code = .nameTaken
    ) throws(LinkError) {
        let recorded = failure.pointee.error
        let message = withUnsafeBytes(of: &failure.pointee.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        failure.pointee.error = 0
        failure.pointee.message.0 = 0
        guard rc < 0 else { return }
        // Only a record that explains this very code (libnl's mapping of that errno) is used.
        let fromKernel = recorded != 0 && nl_syserr2nlerr(recorded) == -rc
        throw LinkError(
            netlink: rc, operation: operation, subject: subject, exists: exists,
            kernelErrno: fromKernel ? recorded : 0, kernelMessage: fromKernel ? message : "")
    }
}

@available(*, unavailable, message: "libnl sockets are not thread-safe: open one per owner")
extension NetlinkSocket: Sendable {}
