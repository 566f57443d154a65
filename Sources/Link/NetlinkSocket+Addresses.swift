// IP addresses on devices over rtnetlink (RTM_NEWADDR / RTM_GETADDR).
import CNetlink
import Wire

extension NetlinkSocket {
    // include/uapi/linux/if_addr.h
    private static let ifaFlagNoDAD: UInt32 = 0x02

    /// Adds `address/prefixLength` to device `name`, which also installs the connected route.
    /// IPv6 addresses are added with IFA_F_NODAD: usable at once, with no wait for duplicate
    /// address detection (RFC 4862 §5.4) on links where the gateway owns every other address.
    /// - Throws: `.noSuchDevice` naming the device; `.invalidArgument` for a bad prefix length;
    ///   `.netlink` ("Object exists") when the address is already there.
    public func addAddress(_ address: IPAddress, prefixLength: Int, toLink name: String) throws(LinkError) {
        let operation = "add address \(address)/\(prefixLength)"
        try NetlinkSocket.checkPrefix(address, prefixLength, operation: operation, subject: name)
        let link = try lookUp(named: name, operation: operation)
        guard let made = rtnl_addr_alloc() else { throw NetlinkObject.outOfMemory(operation, name) }
        let request = NetlinkObject(made, release: { rtnl_addr_put($0) })
        let local = try NetlinkObject.address(address, prefixLength: prefixLength, operation: operation, subject: name)
        rtnl_addr_set_ifindex(request.pointer, link.index)
        try check(rtnl_addr_set_local(request.pointer, local.pointer), operation, name)
        rtnl_addr_set_prefixlen(request.pointer, Int32(prefixLength))
        if case .v6 = address { rtnl_addr_set_flags(request.pointer, NetlinkSocket.ifaFlagNoDAD) }
        try check(rtnl_addr_add(handle, request.pointer, 0), operation, name, exists: .netlink)
    }

    /// The addresses on device `name`, both families.
    public func addresses(ofLink name: String) throws(LinkError) -> [InterfaceAddress] {
        let operation = "list addresses"
        let link = try lookUp(named: name, operation: operation)
        var cache: OpaquePointer? = nil
        try check(rtnl_addr_alloc_cache(handle, &cache), operation, name)
        guard let cache else { return [] }
        let owned = NetlinkObject(cache, release: { nl_cache_free($0) })
        var out: [InterfaceAddress] = []
        var object = nl_cache_get_first(owned.pointer)
        while let current = object {
            if rtnl_addr_get_ifindex(current) == link.index,
                let ip = NetlinkObject.ipAddress(rtnl_addr_get_local(current))
            {
                out.append(
                    InterfaceAddress(
                        address: ip, prefixLength: Int(rtnl_addr_get_prefixlen(current)), linkIndex: link.index,
                        flags: UInt32(rtnl_addr_get_flags(current))))
            }
            object = nl_cache_get_next(current)
        }
        return out
    }

    static func checkPrefix(_ address: IPAddress, _ prefixLength: Int, operation: String, subject: String)
        throws(LinkError)
    {
        let limit = if case .v4 = address { 32 } else { 128 }
        guard (0...limit).contains(prefixLength) else {
            throw LinkError(
                .invalidArgument, operation: operation, subject: subject,
                reason: "prefix length \(prefixLength) is outside 0…\(limit)")
        }
    }
}
