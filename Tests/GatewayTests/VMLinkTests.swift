// The pieces of a VM attach that need no root: device names, the guest MAC each index gets, the
// attach request's shape, and the br_netfilter check read from a directory the test writes.
import Foundation
import Testing
import Wire

@testable import Gateway

@Suite struct VMLinkTests {
    @Test func namesCarryRoleIndexAndTag() {
        let plain = VMLink(index: 3, tag: "")
        #expect((plain.vmTAP, plain.gatewayTAP, plain.bridge) == ("gwv-3", "gwt-3", "gwb-3"))
        let tagged = VMLink(index: 41, tag: "k3j9x")
        #expect((tagged.vmTAP, tagged.gatewayTAP, tagged.bridge) == ("gwv-k3j9x-41", "gwt-k3j9x-41", "gwb-k3j9x-41"))
        // Whatever the tag and index, the names fit IFNAMSIZ and keep their role prefix.
        let long = VMLink(index: 65_535, tag: "abcdef")
        for name in long.names {
            #expect(name.utf8.count <= 15 && name.hasPrefix("gw"), "\(name)")
        }
        #expect(Set(long.names.map { $0.prefix(4) }) == ["gwv-", "gwt-", "gwb-"])
    }

    @Test(arguments: [0, 1, 255, 4095, 65_535])
    func guestMACsAreLocalUnicastAndDistinctFromTheGateways(index: Int) {
        let a = AddressPlan().assignment(index: index)
        #expect(a.guestMAC.isUnicast && a.guestMAC != .zero)
        #expect(a.guestMAC.raw & 0x0200_0000_0000 != 0, "locally administered")
        #expect(a.guestMAC != a.gatewayMAC)
        #expect(a.guestMAC != AddressPlan().assignment(index: index + 1).guestMAC)
    }

    @Test func modeNames() {
        #expect(SandboxSpec.Mode.vm(owner: nil, group: nil).name == "vm")
        #expect(SandboxSpec.Mode.netns("x").name == "netns")
    }

    @Test func bridgeNetfilterSwitchesAreReported() throws {
        let directory = NSTemporaryDirectory() + "gw-brnf-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func set(_ table: String, _ value: String) throws {
            try (value + "\n").write(toFile: directory + "/bridge-nf-call-\(table)", atomically: true, encoding: .utf8)
        }
        // No br_netfilter at all: the directory is missing.
        #expect(VMLink.bridgeNetfilterWarning(bridge: "gwb-0", directory: directory + "/none") == nil)
        for table in ["iptables", "ip6tables", "arptables"] { try set(table, "0") }
        #expect(VMLink.bridgeNetfilterWarning(bridge: "gwb-0", directory: directory) == nil)
        try set("iptables", "1")
        let one = try #require(VMLink.bridgeNetfilterWarning(bridge: "gwb-7", directory: directory))
        #expect(one.hasPrefix("net.bridge.bridge-nf-call-iptables = 1"))
        #expect(one.contains("iptables -I FORWARD -i gwb-7 -o gwb-7 -j ACCEPT"))
        try set("ip6tables", "1")
        let two = try #require(VMLink.bridgeNetfilterWarning(bridge: "gwb-7", directory: directory))
        #expect(two.hasPrefix("net.bridge.bridge-nf-call-iptables, net.bridge.bridge-nf-call-ip6tables = 1"))
    }

    @Test func hostSettingsReadAndWriteFiles() throws {
        let path = NSTemporaryDirectory() + "gw-setting-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(HostSetting.read(path) == nil)
        // A missing file is fine only when asked to skip it.
        try HostSetting.write("1", to: path + "/missing", ifPresent: true)
        let error = #expect(throws: GatewayError.self) { try HostSetting.write("1", to: path + "/missing") }
        #expect(error?.message.contains(path + "/missing") == true)
        try " 8 \nrest".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(HostSetting.read(path) == "8")
        try HostSetting.write("0", to: path)
        #expect(HostSetting.read(path) == "0")
    }
}
