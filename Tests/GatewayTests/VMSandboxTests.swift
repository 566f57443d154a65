// VM sandboxes: the devices attach makes in the host namespace (a persistent TAP its owner can open,
// the gateway's TAP, a bridge with the settings that matter, no host presence on the segment) and a
// real guest booted on them with QEMU: DHCP, SLAAC, DNS, a file fetched from the host, a published
// port served from the guest; detach leaves nothing behind.
import Crypto
import Foundation
import GatewayTestSupport
import Link
import Testing
import Wire

@testable import Gateway

@Suite(.serialized, .enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct VMSandboxTests {
    /// Reads a sysfs or procfs value.
    static func setting(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func attachMakesBridgedTAPsAndDetachRemovesThem() throws {
        let tag = VMKit.deviceTag()
        let f = try GatewayFixture(shards: 1) { $0.hostDeviceTag = tag }
        defer {
            f.tearDown()
            VMKit.sweep(tag: tag, host: f.scratch.host)
        }
        var spec = SandboxSpec(id: "vm-\(tag)", mode: .vm(owner: 4242, group: 4343))
        spec.mtu = 9000
        let info = try f.gateway.attach(spec)
        let (vmTAP, gatewayTAP, bridge) = ("gwv-\(tag)-0", "gwt-\(tag)-0", "gwb-\(tag)-0")
        #expect(info.mode == "vm" && info.tap == vmTAP && info.bridge == bridge && info.namespace == nil)
        // The MAC the guest is told to use: locally administered, from the index, and the one the
        // stack lets through.
        #expect(info.mac == "02:47:58:00:00:00")
        #expect(f.gateway.list().map(\.id) == [spec.id])

        let host = f.scratch.host
        let bridgeInfo = try host.link(named: bridge)
        #expect(bridgeInfo.kind == "bridge" && bridgeInfo.isUp && bridgeInfo.mtu == 9000)
        for name in [vmTAP, gatewayTAP] {
            let link = try host.link(named: name)
            #expect(
                link.kind == "tun" && link.masterIndex == bridgeInfo.index && link.isUp && link.mtu == 9000, "\(link)")
        }
        // The VM's TAP outlives gatewayd's fd and belongs to its owner; the gateway's does not persist.
        let persist = 0x0800  // IFF_PERSIST
        func tunFlags(_ name: String) -> Int? {
            Self.setting("/sys/class/net/\(name)/tun_flags").flatMap { Int($0.dropFirst(2), radix: 16) }
        }
        let vmFlags = try #require(tunFlags(vmTAP))
        let gwFlags = try #require(tunFlags(gatewayTAP))
        #expect(vmFlags & persist != 0 && gwFlags & persist == 0)
        #expect(Self.setting("/sys/class/net/\(vmTAP)/owner") == "4242")
        #expect(Self.setting("/sys/class/net/\(vmTAP)/group") == "4343")

        // Bridge settings: ports forward at once, no snooping between the two.
        #expect(Self.setting("/sys/class/net/\(bridge)/bridge/stp_state") == "0")
        #expect(Self.setting("/sys/class/net/\(bridge)/bridge/forward_delay") == "0")
        #expect(Self.setting("/sys/class/net/\(bridge)/bridge/multicast_snooping") == "0")
        // The host is not on the segment: no IPv6 anywhere on it, no ARP answers or forwarding
        // from the bridge.
        for name in [vmTAP, gatewayTAP, bridge] {
            #expect(Self.setting("/proc/sys/net/ipv6/conf/\(name)/disable_ipv6") == "1", "\(name)")
            #expect(try TestHost.run(["ip", "-6", "addr", "show", "dev", name]).isEmpty, "\(name)")
            #expect(try TestHost.run(["ip", "-4", "addr", "show", "dev", name]).isEmpty, "\(name)")
        }
        #expect(Self.setting("/proc/sys/net/ipv4/conf/\(bridge)/arp_ignore") == "8")
        #expect(Self.setting("/proc/sys/net/ipv4/conf/\(bridge)/forwarding") == "0")
        #expect(Self.setting("/proc/sys/net/ipv4/conf/\(bridge)/rp_filter") == "1")
        // br_netfilter's host-wide switches are reported, not changed.
        let brnf = Self.setting("/proc/sys/net/bridge/bridge-nf-call-iptables")
        #expect((info.warning != nil) == (brnf == "1"))
        if brnf == "1" { #expect(info.warning?.contains(bridge) == true) }

        // The owner, in the group, opens the TAP by name without CAP_NET_ADMIN, as a VM monitor
        // would; with both set the kernel wants both (drivers/net/tun.c tun_not_capable).
        #expect(try Self.openTAP(vmTAP, user: 4242, group: 4343) == "opened")
        #expect(try Self.openTAP(vmTAP, user: 4244, group: 4343) == "EPERM")
        #expect(try Self.openTAP(vmTAP, user: 4242, group: 4242) == "EPERM")

        try f.gateway.detach(spec.id)
        let left = Set(try host.links().map(\.name))
        #expect(left.isDisjoint(with: [vmTAP, gatewayTAP, bridge]))
        #expect(f.gateway.list().isEmpty)
    }

    /// TUNSETIFF on `name` as `user` and `group` with no capabilities: "opened", or the errno's name.
    static func openTAP(_ name: String, user: Int, group: Int) throws -> String {
        let script = """
            import errno, fcntl, struct, sys
            fd = open('/dev/net/tun', 'r+b', buffering=0)
            try:
                fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH22x', sys.argv[1].encode(), 0x0002 | 0x1000 | 0x4000))
                print('opened')
            except OSError as e:
                print(errno.errorcode[e.errno])
            """
        return try TestHost.run([
            "setpriv", "--reuid", String(user), "--regid", String(group), "--clear-groups", "--inh-caps=-all",
            "/usr/bin/python3", "-c", script, name,
        ]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func attachRefusesToTakeOverAnExistingDeviceAndLeavesNothing() throws {
        let tag = VMKit.deviceTag()
        let f = try GatewayFixture(shards: 1) { $0.hostDeviceTag = tag }
        defer {
            f.tearDown()
            VMKit.sweep(tag: tag, host: f.scratch.host)
        }
        // A free persistent TAP by the name the first VM sandbox would get: TUNSETIFF would
        // quietly attach to it.
        var options = TAPDevice.Options()
        options.persistent = true
        _ = try TAPDevice(name: "gwv-\(tag)-0", options: options)
        let error = #expect(throws: GatewayError.self) {
            try f.gateway.attach(SandboxSpec(id: "vm-\(tag)", mode: .vm(owner: nil, group: nil)))
        }
        #expect(error?.message.contains("device gwv-\(tag)-0 already exists") == true, "\(String(describing: error))")
        let names = Set(try f.scratch.host.links().map(\.name))
        #expect(names.contains("gwv-\(tag)-0"))
        #expect(!names.contains("gwt-\(tag)-0") && !names.contains("gwb-\(tag)-0"))
        #expect(f.gateway.list().isEmpty)
        // The failed attach gave its index back: the next sandbox gets it and the derived names.
        try f.scratch.host.deleteLink(named: "gwv-\(tag)-0")
        let info = try f.gateway.attach(SandboxSpec(id: "vm-\(tag)", mode: .vm(owner: nil, group: nil)))
        #expect(info.tap == "gwv-\(tag)-0")
    }

    /// Devices deleted under a running sandbox (ip link del, another daemon's sweep) must not
    /// leave its shard spinning on the dead fd, which then polls as an error for ever.
    @Test func devicesDeletedUnderTheSandboxDoNotSpinItsShard() throws {
        let tag = VMKit.deviceTag()
        let f = try GatewayFixture(shards: 1) { $0.hostDeviceTag = tag }
        defer {
            f.tearDown()
            VMKit.sweep(tag: tag, host: f.scratch.host)
        }
        let id = "vm-\(tag)"
        _ = try f.gateway.attach(SandboxSpec(id: id, mode: .vm(owner: nil, group: nil)))
        for role in ["gwv-", "gwt-", "gwb-"] { try f.scratch.host.deleteLink(named: "\(role)\(tag)-0") }
        let (shard, box) = try #require(f.gateway.attachedSandbox(id))
        let loop = f.gateway.shards[shard]
        usleep(200_000)
        let before = try loop.submitAndWaitTyped { box.value.driver.readCalls }
        usleep(500_000)
        let after = try loop.submitAndWaitTyped { box.value.driver.readCalls }
        #expect(after - before < 5, "\(after - before) reads of a deleted device in 0.5 s")
        // Detach copes with devices that are already gone.
        try f.gateway.detach(id)
        #expect(f.gateway.list().isEmpty)
    }

    @Test(.enabled(if: VMKit.isReady, "needs qemu-system-x86 and linux-image-cloud-amd64 (Tools/install-deps.sh)"))
    func bootScriptReturnsTheGuestCommandsStatus() throws {
        let tag = VMKit.deviceTag()
        let f = try GatewayFixture(shards: 1) { $0.hostDeviceTag = tag }
        defer {
            f.tearDown()
            VMKit.sweep(tag: tag, host: f.scratch.host)
        }
        var spec = SandboxSpec(id: "vm-\(tag)", mode: .vm(owner: nil, group: nil))
        spec.guestMAC = MACAddress(0x02, 0x00, 0x5E, 0x10, 0x20, 0x30)
        let info = try f.gateway.attach(spec)
        #expect(info.mac == "02:00:5e:10:20:30")
        // Short enough for the kernel command line (the long form goes through fw_cfg, below).
        let guest = try VMKit.boot(tap: info.tap, mac: info.mac, command: "cat /sys/class/net/eth0/address; exit 7")
        defer { guest.terminate() }
        #expect(try guest.waitForExit(seconds: 120) == 7, "\(guest.transcript)")
        #expect(guest.lines.contains("02:00:5e:10:20:30"))
        let lease = "eth0 \(info.guestIPv4)/28 router \(info.gatewayIPv4)"
        #expect(guest.value("gw-dhcp: ")?.hasPrefix(lease) == true, "\(guest.transcript)")
    }

    @Test(.enabled(if: VMKit.isReady, "needs qemu-system-x86 and linux-image-cloud-amd64 (Tools/install-deps.sh)"))
    func guestLeasesResolvesFetchesAndServesThroughTheGateway() throws {
        let tag = VMKit.deviceTag()
        let f = try GatewayFixture(shards: 1) { $0.hostDeviceTag = tag }
        let directory = NSTemporaryDirectory() + "gw-vm-\(tag)"
        defer {
            f.tearDown()
            VMKit.sweep(tag: tag, host: f.scratch.host)
            try? FileManager.default.removeItem(atPath: directory)
        }
        let spec = SandboxSpec(id: "vm-\(tag)", mode: .vm(owner: nil, group: nil))
        let info = try f.gateway.attach(spec)
        #expect(info.policy == "host-only")

        // The host's side: a file on a loopback server, a port published into the guest.
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let payload = Data((0..<(384 * 1024)).map { _ in UInt8.random(in: 0...255) })
        try payload.write(to: URL(fileURLWithPath: directory + "/payload.bin"))
        let port = GatewayFixture.freePort()
        _ = try f.background([
            "python3", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory,
        ])
        try f.waitForListener(port: port)
        let published = try f.gateway.publish(sandboxID: spec.id, spec: "8080")

        // Only the host's own addresses could answer the guest if the host were on its segment.
        let hostIPv4 = try TestHost.run([
            "sh", "-c", "ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1 | head -n1",
        ]).trimmingCharacters(in: .whitespacesAndNewlines)
        let gw = info.gatewayIPv4
        let command = """
            GW=\(gw)
            nslookup host.gateway.internal $GW | sed -n 's/^Address: \\([0-9a-f.:]*\\)$/gw-resolved: \\1/p'
            if wget -q -O /tmp/payload http://$GW:\(port)/payload.bin; then
                echo "gw-sha256: $(sha256sum /tmp/payload | cut -d' ' -f1)"
            fi
            ping6 -c 2 -w 3 -I eth0 ff02::1 2>/dev/null | sed -n 's/.* bytes from \\(.*\\): seq=.*/gw-ping6-from: \\1/p'
            arping -c 2 -w 3 -I eth0 $GW | sed -n 's/^Received \\([0-9]*\\) response.*/gw-arp-gateway: \\1/p'
            [ -n "\(hostIPv4)" ] && arping -c 2 -w 3 -I eth0 \(hostIPv4) \\
                | sed -n 's/^Received \\([0-9]*\\) response.*/gw-arp-host: \\1/p'
            mkdir -p /www && dd if=/dev/urandom of=/www/blob bs=1024 count=256 2>/dev/null
            echo "gw-served-sha256: $(sha256sum /www/blob | cut -d' ' -f1)"
            httpd -p 8080 -h /www && echo gw-serving
            i=0
            until wget -q -O /dev/null http://$GW:\(port)/done 2>/dev/null; do
                i=$((i + 1)); [ $i -gt 600 ] && exit 9; usleep 200000
            done
            echo gw-done
            """
        let guest = try VMKit.boot(tap: info.tap, mac: info.mac, command: command)
        defer { guest.terminate() }
        try guest.waitForLine("gw-serving", seconds: 240)

        // From the host: the guest's httpd through the published port.
        let fetched = directory + "/from-guest.bin"
        do {
            let url = "http://127.0.0.1:\(published.hostPort)/blob"
            try TestHost.run(["curl", "-sS", "--max-time", "30", "-o", fetched, url])
        } catch {
            let counters = try? f.gateway.ingressCounters(sandboxID: spec.id)
            Issue.record("\(error)\ningress: \(String(describing: counters))\nguest console:\n\(guest.transcript)")
        }
        let served = (try? Data(contentsOf: URL(fileURLWithPath: fetched))) ?? Data()
        try Data("done".utf8).write(to: URL(fileURLWithPath: directory + "/done"))
        #expect(try guest.waitForExit(seconds: 120) == 0, "\(guest.transcript)")
        let transcript = guest.transcript

        // DHCP gave the sandbox's address and route, SLAAC its /64.
        let lease = "eth0 \(info.guestIPv4)/28 router \(gw) dns \(gw)"
        #expect(guest.value("gw-dhcp: ")?.hasPrefix(lease) == true, "\(transcript)")
        let prefix = try #require(IPv6Address(info.guestIPv6Prefix.split(separator: "/")[0]))
        let mac = try #require(MACAddress(info.mac))
        let slaac = IPv6Address(high: prefix.high, low: IPv6Address(linkLocalFrom: mac).low)
        #expect(guest.values("gw-addr: ").contains("inet6 \(slaac)/64"), "\(transcript)")
        // The gateway's DNS answers its own name with the gateway addresses.
        #expect(Set(guest.values("gw-resolved: ")) == [gw, info.gatewayIPv6], "\(transcript)")
        // The file crossed intact, both ways.
        let expected = SHA256.hash(data: payload).map { String(format: "%02x", $0) }.joined()
        #expect(guest.value("gw-sha256: ") == expected, "\(transcript)")
        let servedHash = SHA256.hash(data: served).map { String(format: "%02x", $0) }.joined()
        #expect(served.count == 256 * 1024 && guest.value("gw-served-sha256: ") == servedHash, "\(transcript)")
        // The gateway answers ARP; the host does not. Nothing but the gateway (and the guest itself)
        // answers an echo to all nodes on the link.
        #expect(Int(guest.value("gw-arp-gateway: ") ?? "") ?? 0 >= 1, "\(transcript)")
        if !hostIPv4.isEmpty { #expect(guest.value("gw-arp-host: ") == "0", "\(transcript)") }
        let onLink = [info.gatewayMAC, info.mac].compactMap { MACAddress($0) }.map {
            IPv6Address(linkLocalFrom: $0).description
        }
        let responders = Set(guest.values("gw-ping6-from: "))
        #expect(!responders.isEmpty && responders.isSubset(of: onLink), "\(responders) \(transcript)")

        let stats = try f.gateway.stats(spec.id)
        #expect(stats.framesIn > 0 && stats.bytesFromHost >= UInt64(payload.count))
        #expect(stats.drops["spoofed"] == 0 && stats.drops["badChecksum"] == 0, "\(stats.drops)")

        try f.gateway.detach(spec.id)
        let left = Set(try f.scratch.host.links().map(\.name))
        #expect(left.isDisjoint(with: ["gwv-\(tag)-0", "gwt-\(tag)-0", "gwb-\(tag)-0"]))
    }
}
