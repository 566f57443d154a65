// Device operations over rtnetlink: bridges, veth pairs, deletion, bridge ports, namespace moves,
// up/down, MTU, MAC, lookups and the sweep of a crashed run's leftovers.
import CNetlink
import Wire

extension NetlinkSocket {
    // include/uapi/linux/if.h
    private static let iffUp: UInt32 = 0x1

    // MARK: - Creating and deleting

    /// Creates a bridge (STP off, the kernel's default), down.
    /// - Throws: `.nameTaken` when a device has that name; `.nameTooLong`.
    public func createBridge(named name: String) throws(LinkError) {
        let operation = "create bridge"
        try InterfaceName.validateOwned(name, operation: operation)
        let link = try NetlinkObject.link(kind: "bridge", operation: operation, subject: name)
        rtnl_link_set_name(link.pointer, name)
        try check(rtnl_link_add(handle, link.pointer, NLM_F_CREATE | NLM_F_EXCL), operation, name)
    }

    /// Creates a veth pair `name` ↔ `peer`. With `peerNamespace`, the peer is born inside it (one
    /// message: no moment where it sits in this namespace).
    /// - Throws: `.nameTaken` when either name is taken (in its namespace).
    public func createVethPair(named name: String, peer: String, peerNamespace: NetworkNamespace? = nil)
        throws(LinkError)
    {
        let operation = "create veth pair"
        let subject = "\(name) (peer \(peer))"
        try InterfaceName.validateOwned(name, operation: operation)
        try InterfaceName.validateOwned(peer, operation: operation)
        let link = try NetlinkObject.link(kind: "veth", operation: operation, subject: subject)
        rtnl_link_set_name(link.pointer, name)
        // The peer lives inside the veth object; get_peer hands out a reference of its own.
        guard let peerPointer = rtnl_link_veth_get_peer(link.pointer) else {
            throw LinkError(.netlink, operation: operation, subject: subject, reason: "libnl has no veth peer object")
        }
        let peerObject = NetlinkObject(peerPointer, release: { rtnl_link_put($0) })
        rtnl_link_set_name(peerObject.pointer, peer)
        if let peerNamespace { rtnl_link_set_ns_fd(peerObject.pointer, peerNamespace.fileDescriptor) }
        let rc = withExtendedLifetime(peerNamespace) { rtnl_link_add(handle, link.pointer, NLM_F_CREATE | NLM_F_EXCL) }
        try check(rc, operation, subject)
    }

    /// Deletes any device by name (for a veth, both ends go).
    /// - Throws: `.noSuchDevice` naming it when there is none.
    public func deleteLink(named name: String) throws(LinkError) {
        let operation = "delete link"
        try InterfaceName.validate(name, operation: operation)
        let link = try NetlinkObject.link(operation: operation, subject: name)
        rtnl_link_set_name(link.pointer, name)
        try check(rtnl_link_delete(handle, link.pointer), operation, name)
    }

    /// Deletes a bridge; its ports are released, not deleted.
    /// - Throws: `.invalidArgument` when `name` is not a bridge, so a typo cannot delete a TAP.
    public func deleteBridge(named name: String) throws(LinkError) {
        let operation = "delete bridge"
        let info = try lookUp(named: name, operation: operation)
        guard info.kind == "bridge" else {
            throw LinkError(
                .invalidArgument, operation: operation, subject: name,
                reason: "not a bridge (kind \(info.kind ?? "none"))")
        }
        try deleteLink(index: info.index, operation: operation, subject: name)
    }

    func deleteLink(index: Int32, operation: String, subject: String) throws(LinkError) {
        let link = try NetlinkObject.link(operation: operation, subject: subject)
        rtnl_link_set_ifindex(link.pointer, index)
        try check(rtnl_link_delete(handle, link.pointer), operation, subject)
    }

    // MARK: - Changing

    /// Sets the device administratively up or down.
    public func setLink(named name: String, up: Bool) throws(LinkError) {
        try change(name, operation: up ? "set link up" : "set link down") { link in
            if up {
                rtnl_link_set_flags(link, NetlinkSocket.iffUp)
            } else {
                rtnl_link_unset_flags(link, NetlinkSocket.iffUp)
            }
        }
    }

    /// Sets the MTU.
    /// - Throws: `.noSuchDevice` naming the device; `.invalidArgument` when the device's range refuses it.
    public func setMTU(of name: String, to mtu: Int) throws(LinkError) {
        let operation = "set MTU"
        guard mtu > 0, mtu <= Int(UInt32.max) else {
            throw LinkError(.invalidArgument, operation: operation, subject: name, reason: "MTU \(mtu) is out of range")
        }
        try change(name, operation: operation) { link in rtnl_link_set_mtu(link, UInt32(mtu)) }
    }

    /// Sets the Ethernet address.
    public func setMACAddress(of name: String, to mac: MACAddress) throws(LinkError) {
        let operation = "set MAC address"
        guard mac.isUnicast, mac != .zero else {
            throw LinkError(
                .invalidArgument, operation: operation, subject: name, reason: "\(mac) is not a unicast address")
        }
        let address = try NetlinkObject.address(mac, operation: operation, subject: name)
        // rtnl_link_set_addr takes its own reference; `address` puts ours.
        try change(name, operation: operation) { link in rtnl_link_set_addr(link, address.pointer) }
    }

    /// Makes `name` a port of `bridge` (IFLA_MASTER).
    public func enslave(_ name: String, toBridge bridge: String) throws(LinkError) {
        let operation = "add to bridge \(bridge)"
        let master = try lookUp(named: bridge, operation: operation)
        try change(name, operation: operation) { link in rtnl_link_set_master(link, master.index) }
    }

    /// Takes `name` out of whatever bridge it is a port of.
    public func release(_ name: String) throws(LinkError) {
        try change(name, operation: "release from bridge") { link in rtnl_link_set_master(link, 0) }
    }

    /// Moves a device into another namespace (IFLA_NET_NS_FD). Its addresses and routes stay
    /// behind; its index is kept unless taken there. Look it up there with a socket opened in it.
    /// - Throws: `.nameTaken` when the namespace has a device of that name.
    public func moveLink(named name: String, to namespace: NetworkNamespace) throws(LinkError) {
        let operation = "move to namespace \(namespace)"
        try withExtendedLifetime(namespace) { () throws(LinkError) in
            try change(name, operation: operation) { link in rtnl_link_set_ns_fd(link, namespace.fileDescriptor) }
        }
    }

    /// Moves a device into the namespace `ip netns` knows as `namespaceName`.
    /// - Throws: `.noSuchNamespace` when there is none.
    public func moveLink(named name: String, toNamespaceNamed namespaceName: String) throws(LinkError) {
        try moveLink(named: name, to: NetworkNamespace(named: namespaceName))
    }

    /// Fetches the device, fills a change request, sends it (RTM_NEWLINK on its index).
    private func change(_ name: String, operation: String, _ fill: (OpaquePointer) -> Void) throws(LinkError) {
        try InterfaceName.validate(name, operation: operation)
        let current = try kernelLink(named: name, operation: operation)
        let request = try NetlinkObject.link(operation: operation, subject: name)
        fill(request.pointer)
        try check(rtnl_link_change(handle, current.pointer, request.pointer, 0), operation, name)
    }

    // MARK: - Looking up

    /// The device called `name`.
    /// - Throws: `.noSuchDevice` naming it.
    public func link(named name: String) throws(LinkError) -> LinkInfo {
        try lookUp(named: name, operation: "look up link")
    }

    /// The device with interface index `index`.
    /// - Throws: `.noSuchDevice`.
    public func link(index: Int32) throws(LinkError) -> LinkInfo {
        let operation = "look up link"
        guard index > 0 else {
            throw LinkError(
                .invalidArgument, operation: operation, subject: "index \(index)",
                reason: "interface indexes start at 1")
        }
        var result: OpaquePointer? = nil
        try check(rtnl_link_get_kernel(handle, index, nil, &result), operation, "index \(index)")
        guard let result else {
            throw LinkError(.noSuchDevice, operation: operation, subject: "index \(index)", reason: "no such device")
        }
        let owned = NetlinkObject(result, release: { rtnl_link_put($0) })
        return LinkInfo(netlink: owned.pointer)
    }

    /// Every device in the socket's namespace, in index order.
    public func links() throws(LinkError) -> [LinkInfo] {
        var cache: OpaquePointer? = nil
        try check(rtnl_link_alloc_cache(handle, AF_UNSPEC, &cache), "list links", namespaceLabel)
        guard let cache else { return [] }
        let owned = NetlinkObject(cache, release: { nl_cache_free($0) })
        var out: [LinkInfo] = []
        var object = nl_cache_get_first(owned.pointer)
        while let current = object {
            out.append(LinkInfo(netlink: current))
            object = nl_cache_get_next(current)
        }
        return out.sorted { $0.index < $1.index }
    }

    func lookUp(named name: String, operation: String) throws(LinkError) -> LinkInfo {
        let link = try kernelLink(named: name, operation: operation)
        return LinkInfo(netlink: link.pointer)
    }

    func kernelLink(named name: String, operation: String) throws(LinkError) -> NetlinkObject {
        try InterfaceName.validate(name, operation: operation)
        var result: OpaquePointer? = nil
        try check(rtnl_link_get_kernel(handle, 0, name, &result), operation, name)
        guard let result else {
            throw LinkError(.noSuchDevice, operation: operation, subject: name, reason: "no such device")
        }
        return NetlinkObject(result, release: { rtnl_link_put($0) })
    }

    // MARK: - Sweeping

    /// Deletes every device in this namespace whose name starts with `prefix`: what a crashed run
    /// left behind. Run at daemon start, and by tests with a prefix of their own.
    /// Best effort: every match is tried; the first failure is thrown after the rest were tried.
    /// - Parameters:
    ///   - prefix: must start with the project prefix ("gw"), so no sweep can reach devices the
    ///     gateway never made.
    ///   - rest: decides on the rest of each matching name (after `prefix`); by default all go.
    /// - Returns: the names that are gone (a veth peer counts when its other end took it along).
    @discardableResult
    public func sweepStaleDevices(
        prefix: String = InterfaceName.projectPrefix, where rest: (Substring) -> Bool = { _ in true }
    ) throws(LinkError) -> [String] {
        let operation = "sweep stale devices"
        guard prefix.hasPrefix(InterfaceName.projectPrefix) else {
            throw LinkError(
                .invalidArgument, operation: operation, subject: prefix,
                reason: "the prefix must start with \"\(InterfaceName.projectPrefix)\"")
        }
        var removed: [String] = []
        var firstFailure: LinkError? = nil
        for link in try links() where link.name.hasPrefix(prefix) && rest(link.name.dropFirst(prefix.count)) {
            do {
                try deleteLink(index: link.index, operation: operation, subject: link.name)
                removed.append(link.name)
            } catch  where error.code == .noSuchDevice {
                removed.append(link.name)
            } catch {
                if firstFailure == nil { firstFailure = error }
            }
        }
        if let firstFailure { throw firstFailure }
        return removed
    }
}
