// VM sandboxes through the control plane: the attach request's "vm" shape and its checks, and
// gatewayctl attach --vm / list / detach against a gatewayd subprocess, including what a restart
// after kill -9 does with a VM sandbox.
import Foundation
import Gateway
import GatewayControl
import GatewayTestSupport
import Testing
import Wire

@Suite struct VMAttachRequestTests {
    @Test func vmRequestBecomesSpec() throws {
        let json = #"{"id": "vm-1", "vm": {"owner": 1000, "group": 1001}, "mtu": 9000, "mac": "02:00:00:00:00:07"}"#
        let request = try JSONDecoder().decode(AttachRequest.self, from: Data(json.utf8))
        #expect(request.netns == nil && request.vm == AttachRequest.VM(owner: 1000, group: 1001))
        let spec = try request.spec(defaultPolicy: "public")
        #expect(spec.mode == .vm(owner: 1000, group: 1001))
        // A VM always configures itself.
        #expect(spec.dhcp && spec.mtu == 9000 && spec.policy == "public")
        #expect(spec.guestMAC == MACAddress(0x02, 0, 0, 0, 0, 7))
        // "vm": {} leaves the TAP to root.
        let bare = try JSONDecoder().decode(AttachRequest.self, from: Data(#"{"id": "vm-2", "vm": {}}"#.utf8)).spec()
        #expect(bare.mode == .vm(owner: nil, group: nil) && bare.guestMAC == nil)
        // The request round-trips as the state file keeps it, and a namespace request still decodes.
        let back = try JSONDecoder().decode(AttachRequest.self, from: JSONEncoder().encode(request))
        #expect(back == request)
        let old = try JSONDecoder().decode(AttachRequest.self, from: Data(#"{"id": "a", "netns": "n"}"#.utf8))
        #expect(try old.spec().mode == .netns("n"))
    }

    static let bad: [(AttachRequest, String)] = [
        (AttachRequest(id: "a"), "say what to attach"),
        (AttachRequest(id: "a", netns: "n", vm: .init()), "not both"),
        (AttachRequest(id: "a", vm: .init(), dhcp: false), "a VM configures itself by DHCP"),
        (AttachRequest(id: "a", vm: .init(), mtu: 100), "MTU 100 is out of range"),
        (AttachRequest(id: "a", vm: .init(), mac: "01:00:5e:00:00:01"), "is not a unicast MAC"),
        (AttachRequest(id: "a/b", vm: .init()), "sandbox ID 'a/b' is not valid"),
    ]

    @Test(arguments: bad) func vmRequestRejects(_ request: AttachRequest, _ reason: String) {
        #expect {
            _ = try request.spec()
        } throws: { error in
            guard let e = error as? ControlError else { return false }
            #expect(e.code == .invalidArgument)
            #expect(e.message.contains(reason), "\(e)")
            return true
        }
    }

    @Test func viewCarriesBridgeAndWarning() throws {
        let info = try JSONDecoder().decode(
            SandboxInfo.self,
            from: Data(
                """
                {"id": "vm-1", "mode": "vm", "shard": 0, "tap": "gwv-0", "bridge": "gwb-0",
                 "mac": "02:47:58:00:00:00", "gatewayMAC": "02:47:57:00:00:00",
                 "guestIPv4": "10.88.0.2", "gatewayIPv4": "10.88.0.1", "prefixLength": 28,
                 "guestIPv6Prefix": "fd47:5700::/64", "gatewayIPv6": "fd47:5700::1", "mtu": 1500, "policy": "host-only",
                 "warning": "bridge-nf"}
                """.utf8))
        let view = SandboxView(info: info, dhcp: true, ports: [])
        #expect(view.mode == "vm" && view.bridge == "gwb-0" && view.warning == "bridge-nf" && view.namespace == nil)
        #expect(view.guestIPv6 == "fd47:5700::47:58ff:fe00:0")
    }
}

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct VMAttachCLITests {
    /// A daemon whose VM devices carry the test's tag, swept by it and by the teardown.
    func harness() throws -> DaemonHarness {
        let h = try DaemonHarness()
        try h.tagHostDevices()
        return h
    }

    func sweep(_ h: DaemonHarness) {
        for role in ["gwv-", "gwt-", "gwb-"] { _ = try? h.scratch.host.sweepStaleDevices(prefix: role + h.scratch.tag) }
    }

    func hostLinks(_ h: DaemonHarness) -> Set<String> {
        Set(((try? h.scratch.host.links()) ?? []).map(\.name))
    }

    @Test func attachVMListDetach() throws {
        let h = try harness()
        defer {
            h.tearDown()
            sweep(h)
        }
        try h.start()
        let tag = h.scratch.tag
        let id = "vm-\(tag)"
        let tap = "gwv-\(tag)-0"

        let attach = try h.ctl("attach", id, "--vm", "--owner", "4242", "--mac", "02:00:00:00:42:42")
        #expect(attach.status == 0, "\(attach.stderr)")
        #expect(attach.stdout.contains("mode         vm"))
        let qemu = "-netdev tap,ifname=\(tap),script=no,downscript=no,vnet_hdr=on"
        #expect(attach.stdout.contains("tap          \(tap) (QEMU: \(qemu))"))
        #expect(attach.stdout.contains("mac          02:00:00:00:42:42 (the guest must use it"))
        #expect(attach.stdout.contains("bridge       gwb-\(tag)-0"))
        #expect(attach.stdout.contains("ipv4         by DHCP from"))
        // The br_netfilter warning goes to stderr, only when the host has it on.
        let brnf = (try? String(contentsOfFile: "/proc/sys/net/bridge/bridge-nf-call-iptables", encoding: .utf8))
        #expect(attach.stderr.contains("warning: ") == (brnf?.hasPrefix("1") == true), "\(attach.stderr)")
        #expect(hostLinks(h).isSuperset(of: [tap, "gwt-\(tag)-0", "gwb-\(tag)-0"]))
        #expect((try? String(contentsOfFile: "/sys/class/net/\(tap)/owner", encoding: .utf8)) == "4242\n")

        let table = try h.ctl("list")
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.first?.contains("MODE") == true)
        let row = try #require(lines.first { $0.hasPrefix(id) })
        let columns = row.split(separator: " ").map(String.init)
        #expect(columns.count >= 5 && columns[1] == "vm" && columns[2] == "-" && columns[4] == tap, "\(row)")
        let views = try JSONDecoder().decode([SandboxView].self, from: Data(h.ctl("list", "--json").stdout.utf8))
        let view = try #require(views.first)
        #expect(view.mode == "vm" && view.tap == tap && view.dhcp && view.namespace == nil)
        #expect(view.bridge == "gwb-\(tag)-0")

        // A second VM takes the next index; the same ID again is refused.
        #expect(try h.ctl("attach", id, "--vm").status == 3)
        #expect(try h.ctl("attach", "\(id)-b", "--vm").status == 0)
        #expect(hostLinks(h).contains("gwv-\(tag)-1"))

        #expect(try h.ctl("detach", id).status == 0)
        #expect(try h.ctl("detach", "\(id)-b").status == 0)
        #expect(hostLinks(h).isDisjoint(with: [tap, "gwt-\(tag)-0", "gwb-\(tag)-0", "gwv-\(tag)-1"]))
        #expect(h.stateFiles().isEmpty)
    }

    @Test func commandLineChecksTheMode() throws {
        let h = try harness()
        defer { h.tearDown() }
        let wrong = [
            ["attach", "x"], ["attach", "x", "--vm", "--netns", "n"], ["attach", "x", "--netns", "n", "--owner", "1"],
        ]
        for arguments in wrong {
            let r = try runProgram(BuiltProducts.gatewayctl, arguments + ["--control", h.socketPath])
            #expect(r.status == 64, "\(arguments): \(r.stderr)")
        }
    }

    /// A VM stand-in: a process that holds the VM TAP open, as a monitor does, and asks for the
    /// gateway's MAC by ARP through it before the daemon is killed and again after `go` appears,
    /// appending "before ok" / "after ok" (or "none") to `out`.
    static let vmStandIn = """
        import fcntl, os, select, socket, struct, sys, time
        name, mac, ip, gateway, go, out = sys.argv[1:7]
        fd = os.open('/dev/net/tun', os.O_RDWR)
        fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', name.encode(), 0x0002 | 0x1000))  # TUNSETIFF: TAP, no PI
        m = bytes.fromhex(mac.replace(':', ''))
        request = (b'\\xff' * 6 + m + b'\\x08\\x06' + struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + m
                   + socket.inet_aton(ip) + b'\\x00' * 6 + socket.inet_aton(gateway))
        def exchange():
            deadline, resend = time.time() + 5, 0
            while time.time() < deadline:
                if time.time() >= resend:
                    try: os.write(fd, request)
                    except OSError: pass
                    resend = time.time() + 0.5
                if select.select([fd], [], [], 0.1)[0]:
                    try: f = os.read(fd, 65536)
                    except OSError: continue
                    if f[12:14] == b'\\x08\\x06' and f[20:22] == b'\\x00\\x02' and f[28:32] == socket.inet_aton(gateway):
                        return 'ok'
            return 'none'
        open(out, 'a').write('before ' + exchange() + '\\n')
        while not os.path.exists(go): time.sleep(0.05)
        open(out, 'a').write('after ' + exchange() + '\\n')
        """

    func waitForLine(_ path: String, _ prefix: String) -> String {
        var line: Substring?
        _ = eventually(seconds: 15, every: 0.05) {
            let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            line = text.split(separator: "\n").first { $0.hasPrefix(prefix) }
            return line != nil
        }
        return line.map(String.init) ?? "no \(prefix) line"
    }

    func index(_ h: DaemonHarness, _ name: String) -> Int32? { try? h.scratch.host.link(named: name).index }

    /// After kill -9 the VM's TAP and bridge outlive the process; the next start leaves them to
    /// the restore, which takes them over with a new gateway TAP: a VM that held its TAP open
    /// throughout reaches its gateway again, with the same MAC and addresses.
    @Test func restartAfterKillGivesTheVMItsLinkBack() throws {
        let h = try harness()
        let processes = GatewayTestSupport.BackgroundProcesses()
        defer {
            processes.killAll()
            h.tearDown()
            sweep(h)
        }
        try h.start()
        let tag = h.scratch.tag
        let id = "vm-\(tag)"
        let (tap, bridge, gatewayTAP) = ("gwv-\(tag)-0", "gwb-\(tag)-0", "gwt-\(tag)-0")
        let attached = try h.ctl("attach", id, "--vm", "--json")
        #expect(attached.status == 0, "\(attached.stderr)")
        let view = try JSONDecoder().decode(SandboxView.self, from: Data(attached.stdout.utf8))
        #expect(h.stateFiles() == ["\(id).json"])
        let out = h.directory + "/vm.out"
        let go = h.directory + "/vm.go"
        _ = try processes.start(["python3", "-c", Self.vmStandIn, tap, view.mac, view.guestIPv4, view.gatewayIPv4, go, out])
        #expect(waitForLine(out, "before") == "before ok")
        let indexes = [index(h, tap), index(h, bridge)]

        h.stop(SIGKILL)
        // The persistent TAP and the bridge outlive the process; the gateway's TAP goes with it.
        let leftover = hostLinks(h)
        #expect(leftover.isSuperset(of: [tap, bridge]))
        #expect(!leftover.contains(gatewayTAP))

        try h.start()
        #expect(h.log().contains("restored sandbox \(id) on its VM's TAP \(tap)"), "\(h.log())")
        #expect(hostLinks(h).isSuperset(of: [tap, bridge, gatewayTAP]))
        #expect([index(h, tap), index(h, bridge)] == indexes, "taken over, not made anew")
        let after = try JSONDecoder().decode([SandboxView].self, from: Data(h.ctl("list", "--json").stdout.utf8))
        let restored = try #require(after.first)
        #expect(after.count == 1 && restored.id == id && restored.mode == "vm" && restored.tap == tap)
        #expect(restored.mac == view.mac && restored.guestIPv4 == view.guestIPv4 && restored.bridge == bridge)
        #expect(FileManager.default.createFile(atPath: go, contents: nil))
        #expect(waitForLine(out, "after") == "after ok")
        #expect(h.stateFiles() == ["\(id).json"])
        #expect(h.stop(SIGTERM) == 0)
        #expect(hostLinks(h).isDisjoint(with: [tap, bridge, gatewayTAP]))
    }

    /// A VM whose TAP did not survive (deleted while gatewayd was down) is not restored: what is
    /// left of its devices is removed with its state file, and the ID is free for a new attach.
    @Test func restartDoesNotRestoreAVMWhoseTAPIsGone() throws {
        let h = try harness()
        defer {
            h.tearDown()
            sweep(h)
        }
        try h.start()
        let tag = h.scratch.tag
        let id = "vm-\(tag)"
        #expect(try h.ctl("attach", id, "--vm").status == 0)
        h.stop(SIGKILL)
        try TestHost.run(["ip", "link", "del", "gwv-\(tag)-0"])

        try h.start()
        #expect(hostLinks(h).isDisjoint(with: ["gwv-\(tag)-0", "gwb-\(tag)-0", "gwt-\(tag)-0"]))
        #expect(h.log().contains("not restoring VM sandbox \(id): its TAP is gone"))
        #expect(h.stateFiles().isEmpty)
        #expect(try JSONDecoder().decode([SandboxView].self, from: Data(h.ctl("list", "--json").stdout.utf8)).isEmpty)
        #expect(try h.ctl("attach", id, "--vm").status == 0)
        #expect(hostLinks(h).contains("gwv-\(tag)-0"))
        #expect(h.stop(SIGTERM) == 0)
        #expect(!hostLinks(h).contains("gwv-\(tag)-0"))
    }
}
