// Ownership of one libnl object (link, address, route, nl_addr or cache): it is put or freed
// exactly once, when its owner goes; plus conversions between Wire addresses and nl_addr.
import CNetlink
import Wire

#if canImport(Glibc)
import Glibc
#endif

/// A libnl object reference that this value alone owns.
struct NetlinkObject: ~Copyable {
    let pointer: OpaquePointer
    private let release: (OpaquePointer) -> Void

    init(_ pointer: OpaquePointer, release: @escaping (OpaquePointer) -> Void) {
        self.pointer = pointer
        self.release = release
    }

    deinit { release(pointer) }

    /// An empty `rtnl_link`, optionally of a kind ("bridge", "veth").
    static func link(kind: String? = nil, operation: String, subject: String) throws(LinkError) -> NetlinkObject {
        guard let p = rtnl_link_alloc() else { throw outOfMemory(operation, subject) }
        let object = NetlinkObject(p, release: { rtnl_link_put($0) })
        if let kind {
            let rc = rtnl_link_set_type(p, kind)
            if rc < 0 { throw LinkError(netlink: rc, operation: operation, subject: subject) }
        }
        return object
    }

    /// An `nl_addr` holding an IP address (network byte order) with a prefix length.
    static func address(_ address: IPAddress, prefixLength: Int, operation: String, subject: String) throws(LinkError)
        -> NetlinkObject
    {
        let made: OpaquePointer?
        switch address {
        case .v4(let a):
            var be = a.raw.bigEndian
            made = withUnsafeBytes(of: &be) { nl_addr_build(AF_INET, $0.baseAddress, 4) }
        case .v6(let a):
            var be = (a.high.bigEndian, a.low.bigEndian)
            made = withUnsafeBytes(of: &be) { nl_addr_build(AF_INET6, $0.baseAddress, 16) }
        }
        guard let made else { throw outOfMemory(operation, subject) }
        nl_addr_set_prefixlen(made, Int32(prefixLength))
        return NetlinkObject(made, release: { nl_addr_put($0) })
    }

    /// An `nl_addr` holding a MAC address, as IFLA_ADDRESS carries it.
    static func address(_ mac: MACAddress, operation: String, subject: String) throws(LinkError) -> NetlinkObject {
        var bytes = (mac.byte(0), mac.byte(1), mac.byte(2), mac.byte(3), mac.byte(4), mac.byte(5))
        let made = withUnsafeBytes(of: &bytes) { nl_addr_build(AF_LLC, $0.baseAddress, 6) }
        guard let made else { throw outOfMemory(operation, subject) }
        return NetlinkObject(made, release: { nl_addr_put($0) })
    }

    /// The IP address in an `nl_addr` (not owned). An empty address of a known family (a default
    /// route's destination) reads as that family's zero address.
    static func ipAddress(_ nl: OpaquePointer?) -> IPAddress? {
        guard let nl else { return nil }
        let length = Int(nl_addr_get_len(nl))
        let family = nl_addr_get_family(nl)
        guard let raw = nl_addr_get_binary_addr(nl), length > 0 else {
            switch family {
            case AF_INET: return .v4(.any)
            case AF_INET6: return .v6(.any)
            default: return nil
            }
        }
        let bytes = UnsafeRawBufferPointer(start: raw, count: length)
        switch (family, length) {
        // bound: the case patterns match the length the buffer was made with.
        case (AF_INET, 4): return .v4(bytes.uncheckedIPv4(0))
        case (AF_INET6, 16): return .v6(bytes.uncheckedIPv6(0))
        default: return nil
        }
    }

    /// The MAC address in an `nl_addr` (not owned), when it is six bytes long.
    static func macAddress(_ nl: OpaquePointer?) -> MACAddress? {
        guard let nl, nl_addr_get_len(nl) == 6, let raw = nl_addr_get_binary_addr(nl) else { return nil }
        // bound: the guard above checked the address is six bytes long.
        return UnsafeRawBufferPointer(start: raw, count: 6).uncheckedMAC(0)
    }

    static func outOfMemory(_ operation: String, _ subject: String) -> LinkError {
        LinkError(.system, operation: operation, subject: subject, reason: "libnl could not allocate an object")
    }
}
