// Routes over rtnetlink (RTM_NEWROUTE / RTM_GETROUTE): default routes via a gateway, on-link
// routes, and reading the table back.
import CNetlink
import Wire

extension NetlinkSocket {
    // include/uapi/linux/rtnetlink.h
    private static let rtnUnicast: UInt8 = 1
    private static let rtprotStatic: UInt8 = 4
    private static let rtScopeUniverse: UInt8 = 0
    private static let rtScopeLink: UInt8 = 253
    private static let rtnhFlagOnLink: UInt32 = 0x4

    /// Adds a route to `destination/prefixLength` out of device `name`: through `gateway` when
    /// given, else on-link (the destination is reached directly on that device's segment).
    /// - Parameters:
    ///   - gatewayOnLink: RTNH_F_ONLINK, trust that the gateway is on the link even though no
    ///     connected route covers it (a /32 address with a gateway outside it).
    ///   - metric: RTA_PRIORITY; lower wins.
    /// - Throws: `.noSuchDevice` naming the device; `.invalidArgument` for mixed families, a bad
    ///   prefix, or host bits set in the destination; `.netlink` ("Object exists") for a
    ///   duplicate; the kernel's refusal of an unreachable gateway ("Network is unreachable").
    public func addRoute(
        to destination: IPAddress, prefixLength: Int, via gateway: IPAddress? = nil, device name: String,
        gatewayOnLink: Bool = false, metric: UInt32? = nil
    ) throws(LinkError) {
        let target = prefixLength == 0 ? "default" : "\(destination)/\(prefixLength)"
        let operation = "add route \(target)" + (gateway.map { " via \($0)" } ?? "")
        try NetlinkSocket.checkPrefix(destination, prefixLength, operation: operation, subject: name)
        let isV4: Bool = if case .v4 = destination { true } else { false }
        if let gateway {
            let gatewayIsV4: Bool = if case .v4 = gateway { true } else { false }
            guard gatewayIsV4 == isV4 else {
                throw LinkError(
                    .invalidArgument, operation: operation, subject: name,
                    reason: "the gateway's family differs from the destination's")
            }
        }
        guard NetlinkSocket.hostBitsClear(destination, prefixLength) else {
            throw LinkError(
                .invalidArgument, operation: operation, subject: name,
                reason: "the destination has bits set beyond /\(prefixLength)")
        }
        let link = try lookUp(named: name, operation: operation)

        guard let made = rtnl_route_alloc() else { throw NetlinkObject.outOfMemory(operation, name) }
        let route = NetlinkObject(made, release: { rtnl_route_put($0) })
        try check(rtnl_route_set_family(route.pointer, UInt8(isV4 ? AF_INET : AF_INET6)), operation, name)
        rtnl_route_set_table(route.pointer, Route.mainTable)
        try check(rtnl_route_set_type(route.pointer, NetlinkSocket.rtnUnicast), operation, name)
        rtnl_route_set_protocol(route.pointer, NetlinkSocket.rtprotStatic)
        // As iproute2 does: IPv6 routes are always universe scope; an IPv4 route without a
        // gateway is link scope, which is what makes it on-link.
        let scope = (isV4 && gateway == nil) ? NetlinkSocket.rtScopeLink : NetlinkSocket.rtScopeUniverse
        rtnl_route_set_scope(route.pointer, scope)
        if let metric { rtnl_route_set_priority(route.pointer, metric) }
        // set_dst and nh_set_gateway take references of their own; the locals put ours.
        let dst = try NetlinkObject.address(
            destination, prefixLength: prefixLength, operation: operation, subject: name)
        try check(rtnl_route_set_dst(route.pointer, dst.pointer), operation, name)

        let via = try gateway.map { (g) throws(LinkError) -> NetlinkObject in
            try NetlinkObject.address(g, prefixLength: isV4 ? 32 : 128, operation: operation, subject: name)
        }
        guard let hop = rtnl_route_nh_alloc() else { throw NetlinkObject.outOfMemory(operation, name) }
        rtnl_route_nh_set_ifindex(hop, link.index)
        if let via {
            rtnl_route_nh_set_gateway(hop, via.pointer)
            if gatewayOnLink { rtnl_route_nh_set_flags(hop, NetlinkSocket.rtnhFlagOnLink) }
        }
        // The route owns the next hop from here and frees it with itself.
        rtnl_route_add_nexthop(route.pointer, hop)
        try check(rtnl_route_add(handle, route.pointer, NLM_F_EXCL), operation, name, exists: .netlink)
    }

    /// Adds the default route (0.0.0.0/0 or ::/0, by the gateway's family) via `gateway` out of `name`.
    public func addDefaultRoute(
        via gateway: IPAddress, device name: String, gatewayOnLink: Bool = false, metric: UInt32? = nil
    ) throws(LinkError) {
        let any: IPAddress = if case .v4 = gateway { .v4(.any) } else { .v6(.any) }
        try addRoute(to: any, prefixLength: 0, via: gateway, device: name, gatewayOnLink: gatewayOnLink, metric: metric)
    }

    /// Adds an on-link route: `destination/prefixLength` is reached directly on device `name`.
    public func addOnLinkRoute(to destination: IPAddress, prefixLength: Int, device name: String, metric: UInt32? = nil)
        throws(LinkError)
    {
        try addRoute(to: destination, prefixLength: prefixLength, via: nil, device: name, metric: metric)
    }

    /// The routes in `table` (nil: every table) of one family or both.
    public func routes(family: Route.Family? = nil, table: UInt32? = Route.mainTable) throws(LinkError) -> [Route] {
        let af: Int32 =
            switch family {
            case .ipv4: AF_INET
            case .ipv6: AF_INET6
            case nil: AF_UNSPEC
            }
        var cache: OpaquePointer? = nil
        try check(rtnl_route_alloc_cache(handle, af, 0, &cache), "list routes", namespaceLabel)
        guard let cache else { return [] }
        let owned = NetlinkObject(cache, release: { nl_cache_free($0) })
        var out: [Route] = []
        var object = nl_cache_get_first(owned.pointer)
        while let current = object {
            object = nl_cache_get_next(current)
            let routeTable = rtnl_route_get_table(current)
            if let table, routeTable != table { continue }
            let dst = rtnl_route_get_dst(current)
            guard let destination = NetlinkObject.ipAddress(dst) else { continue }
            var gateway: IPAddress? = nil
            var output: Int32? = nil
            if rtnl_route_get_nnexthops(current) > 0, let hop = rtnl_route_nexthop_n(current, 0) {
                gateway = NetlinkObject.ipAddress(rtnl_route_nh_get_gateway(hop))
                let index = rtnl_route_nh_get_ifindex(hop)
                output = index > 0 ? index : nil
            }
            out.append(
                Route(
                    destination: destination, prefixLength: Int(nl_addr_get_prefixlen(dst)), gateway: gateway,
                    outputIndex: output, table: routeTable, scope: rtnl_route_get_scope(current),
                    routingProtocol: rtnl_route_get_protocol(current), metric: rtnl_route_get_priority(current)))
        }
        return out
    }

    static func hostBitsClear(_ address: IPAddress, _ prefixLength: Int) -> Bool {
        switch address {
        case .v4(let a):
            let mask: UInt32 = prefixLength == 0 ? 0 : ~0 << UInt32(32 - prefixLength)
            return a.raw & ~mask == 0
        case .v6(let a):
            let highMask: UInt64 = prefixLength == 0 ? 0 : (prefixLength >= 64 ? ~0 : ~0 << UInt64(64 - prefixLength))
            let lowMask: UInt64 = prefixLength <= 64 ? 0 : (prefixLength == 128 ? ~0 : ~0 << UInt64(128 - prefixLength))
            return a.high & ~highMask == 0 && a.low & ~lowMask == 0
        }
    }
}
