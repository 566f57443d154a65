// The devices of a VM sandbox, all in the host namespace (a bridge cannot move to another): the
// persistent TAP the VM monitor opens by name, the stack's own TAP, and the bridge joining them.
#if canImport(Glibc)
import Glibc
#endif
import Link

/// A VM sandbox's link: `gwv-N`, persistent, for the VM monitor (QEMU `-netdev
/// tap,ifname=gwv-N,script=no,downscript=no,vnet_hdr=on`, Firecracker `host_dev_name`); `gwt-N`,
/// the shard's TAP with vnet header and offloads as for a namespace; bridge `gwb-N` with both as
/// ports. A TAP's frames go to whoever reads its fd, so two TAPs need a bridge between them.
///
/// The host must not become a second party on that segment, reachable around the stack and its
/// policy. So the three devices get no IPv6 (no link-local address: the host sends no router
/// solicitations, MLD or NDP there and takes no IPv6 from it), and the bridge, the only one of
/// them the host's IPv4 receives on, answers no ARP (arp_ignore 8), forwards nothing
/// (forwarding 0) and drops sources that do not route back through it (rp_filter 1).
///
/// Bridge settings that matter for a two-port segment: STP off and forward delay 0 (ports
/// forward as soon as they are up), multicast snooping off (the stack never sends MLD reports,
/// so snooping could only starve it of the guest's neighbour solicitations).
struct VMLink: Sendable {
    let vmTAP: String
    let gatewayTAP: String
    let bridge: String

    /// Names for sandbox `index`; `tag` (``GatewayConfiguration/hostDeviceTag``) keeps two
    /// gateways on one host apart.
    init(index: Int, tag: String) {
        let id = tag.isEmpty ? String(index) : "\(tag)-\(index)"
        vmTAP = InterfaceName.make(.vmTAP, id: id)
        gatewayTAP = InterfaceName.make(.gatewayTAP, id: id)
        bridge = InterfaceName.make(.bridge, id: id)
    }

    var names: [String] { [vmTAP, gatewayTAP, bridge] }

    /// Creates the three devices, up, and returns the open gateway TAP and, when a host setting
    /// may get in the way, a warning for the operator. On failure nothing is left behind.
    /// `reuse` (a restart restoring the sandbox): the VM TAP and bridge a killed run left are
    /// taken over rather than refused, so a VM monitor holding the TAP keeps its link.
    func create(
        sandbox id: String, mtu: Int, owner: UInt32?, group: UInt32?, reuse: Bool = false
    ) throws(GatewayError) -> (tap: TAPDevice, warning: String?) {
        let nl: NetlinkSocket
        do {
            nl = try NetlinkSocket()
        } catch {
            throw GatewayError.link("attach VM sandbox '\(id)'", error)
        }
        if reuse && survives(nl) {
            do {
                return try adopt(nl, mtu: mtu)
            } catch {
                // The VM's devices stay (its monitor may hold the TAP); the next start sweeps them.
                try? nl.deleteLink(named: gatewayTAP)
                throw GatewayError.link("restore VM sandbox '\(id)' on \(vmTAP)", error)
            }
        }
        // TUNSETIFF would quietly attach to a free TAP of the name: never take over a device
        // that another gateway, or a crashed run the sweep has not seen yet, left there.
        for name in names where (try? nl.link(named: name)) != nil {
            throw GatewayError(
                .deviceExists,
                "attach VM sandbox '\(id)': device \(name) already exists (another gateway's, or left by a crashed "
                    + "run): remove it (ip link del \(name)) or restart gatewayd, which sweeps them")
        }
        do {
            return try build(nl, mtu: mtu, owner: owner, group: group)
        } catch {
            remove(nl)
            throw GatewayError.link("attach VM sandbox '\(id)'", error)
        }
    }

    private func build(
        _ nl: NetlinkSocket, mtu: Int, owner: UInt32?, group: UInt32?
    ) throws(GatewayError) -> (tap: TAPDevice, warning: String?) {
        do {
            try nl.createBridge(named: bridge)
            try HostSetting.write("0", to: "/sys/class/net/\(bridge)/bridge/stp_state")
            try HostSetting.write("0", to: "/sys/class/net/\(bridge)/bridge/forward_delay")
            try HostSetting.write("0", to: "/sys/class/net/\(bridge)/bridge/multicast_snooping")
            // Per bridge these only add to the host-wide switches (see bridgeNetfilterWarning).
            for table in ["iptables", "ip6tables", "arptables"] {
                try HostSetting.write("0", to: "/sys/class/net/\(bridge)/bridge/nf_call_\(table)", ifPresent: true)
            }

            var vmOptions = TAPDevice.Options()
            vmOptions.persistent = true
            vmOptions.owner = owner
            vmOptions.group = group
            // Only made to persist: its fd closes here and the VM monitor opens it later.
            _ = try TAPDevice(name: vmTAP, options: vmOptions)
            let tap = try TAPDevice(name: gatewayTAP)

            for name in names {
                try HostSetting.write("1", to: "/proc/sys/net/ipv6/conf/\(name)/disable_ipv6", ifPresent: true)
            }
            try HostSetting.write("8", to: "/proc/sys/net/ipv4/conf/\(bridge)/arp_ignore")
            try HostSetting.write("0", to: "/proc/sys/net/ipv4/conf/\(bridge)/forwarding")
            try HostSetting.write("1", to: "/proc/sys/net/ipv4/conf/\(bridge)/rp_filter")

            // Ports first: a bridge's MTU may not exceed its ports'.
            try nl.setMTU(of: vmTAP, to: mtu)
            try nl.setMTU(of: gatewayTAP, to: mtu)
            try nl.enslave(vmTAP, toBridge: bridge)
            try nl.enslave(gatewayTAP, toBridge: bridge)
            try nl.setMTU(of: bridge, to: mtu)
            for name in names { try nl.setLink(named: name, up: true) }
            return (tap, Self.bridgeNetfilterWarning(bridge: bridge))
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError.link(nil, error)
        }
    }

    /// Whether the devices a VM keeps across a gatewayd crash are there: its persistent TAP and
    /// the bridge (the gateway's own TAP went with the process).
    func survives(_ nl: NetlinkSocket) -> Bool {
        (try? nl.link(named: vmTAP)) != nil && (try? nl.link(named: bridge)) != nil
    }

    /// Makes a new gateway TAP and joins it to the surviving bridge, with the settings `build`
    /// gives it; the VM TAP and the bridge keep theirs. One the sweep left is replaced.
    private func adopt(_ nl: NetlinkSocket, mtu: Int) throws(GatewayError) -> (tap: TAPDevice, warning: String?) {
        do {
            if (try? nl.link(named: gatewayTAP)) != nil { try nl.deleteLink(named: gatewayTAP) }
            let tap = try TAPDevice(name: gatewayTAP)
            try HostSetting.write("1", to: "/proc/sys/net/ipv6/conf/\(gatewayTAP)/disable_ipv6", ifPresent: true)
            try nl.setMTU(of: gatewayTAP, to: mtu)
            try nl.enslave(gatewayTAP, toBridge: bridge)
            for name in names { try nl.setLink(named: name, up: true) }
            return (tap, Self.bridgeNetfilterWarning(bridge: bridge))
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError.link(nil, error)
        }
    }

    /// Deletes the devices (a persistent TAP needs an explicit delete; a VM monitor that still
    /// has it open loses it). Best effort: one already gone is no failure.
    func remove() {
        guard let nl = try? NetlinkSocket() else { return }
        remove(nl)
    }

    private func remove(_ nl: NetlinkSocket) {
        for name in names { try? nl.deleteLink(named: name) }
    }

    /// With br_netfilter's host-wide switches on, bridged frames pass the host's iptables and
    /// nftables FORWARD hooks, whatever the bridge's own `nf_call_*` say (the kernel ORs them),
    /// and a DROP policy there (Docker sets one) silently cuts the VM off. Changing the switches
    /// would change every bridge on the host, so the operator is told instead.
    static func bridgeNetfilterWarning(
        bridge: String, directory: String = "/proc/sys/net/bridge"
    ) -> String? {
        let on = ["iptables", "ip6tables", "arptables"].filter {
            HostSetting.read("\(directory)/bridge-nf-call-\($0)") == "1"
        }
        guard !on.isEmpty else { return nil }
        let switches = on.map { "net.bridge.bridge-nf-call-\($0)" }.joined(separator: ", ")
        return "\(switches) = 1 (br_netfilter): frames crossing \(bridge) pass the host's firewall FORWARD chains, "
            + "where a DROP policy cuts the VM off; allow them "
            + "(iptables -I FORWARD -i \(bridge) -o \(bridge) -j ACCEPT) "
            + "or set those switches to 0 if nothing on the host needs them"
    }
}

extension Gateway {
    /// The devices of a VM sandbox on address block `addressBlock` that outlive a gatewayd crash
    /// (its persistent TAP and its bridge): the startup sweep leaves them for the restore.
    public static func survivingVMDevices(addressBlock: Int, hostDeviceTag: String) -> [String] {
        let link = VMLink(index: addressBlock, tag: hostDeviceTag)
        return [link.vmTAP, link.bridge]
    }

    /// Whether a VM sandbox on `addressBlock` still has the devices `survivingVMDevices` names,
    /// so that a restore can give its VM its link back.
    public func vmLinkSurvives(addressBlock: Int) -> Bool {
        privileges.vmLinkSurvives(addressBlock: addressBlock)
    }

    /// Deletes what is left of the devices of a VM sandbox on `addressBlock` that is not
    /// restored after all (the sweep left them for a restore that did not happen).
    public func discardVMDevices(addressBlock: Int) {
        privileges.removeVMLink(addressBlock: addressBlock)
    }
}
