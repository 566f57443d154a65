// Port SPECs and attach requests as gatewayctl takes them: the accepted forms, and a message
// that quotes the bad text and shows the syntax for everything else.
import Gateway
import GatewayControl
import Testing
import Wire

@Suite struct SpecTests {
    static let good: [(String, PublishRequest)] = [
        ("8080:80", PublishRequest(hostIP: nil, hostPort: 8080, guestPort: 80, protocol: "tcp")),
        ("8080:80/tcp", PublishRequest(hostIP: nil, hostPort: 8080, guestPort: 80, protocol: "tcp")),
        ("5353:53/UDP", PublishRequest(hostIP: nil, hostPort: 5353, guestPort: 53, protocol: "udp")),
        ("127.0.0.1:8080:80", PublishRequest(hostIP: "127.0.0.1", hostPort: 8080, guestPort: 80, protocol: "tcp")),
        ("[::1]:8443:443/tcp", PublishRequest(hostIP: "::1", hostPort: 8443, guestPort: 443, protocol: "tcp")),
        ("80", PublishRequest(hostIP: nil, hostPort: 0, guestPort: 80, protocol: "tcp")),
        ("53/udp", PublishRequest(hostIP: nil, hostPort: 0, guestPort: 53, protocol: "udp")),
        ("0:22", PublishRequest(hostIP: nil, hostPort: 0, guestPort: 22, protocol: "tcp")),
    ]

    @Test(arguments: good) func parses(_ text: String, _ expected: PublishRequest) throws {
        let spec = try PublishRequest(parsing: text)
        #expect(spec == expected)
        try spec.validate()
        // The printed form reads back as the same spec.
        #expect(try PublishRequest(parsing: spec.description) == spec)
    }

    static let bad: [(String, String)] = [
        ("", "guest port '' is not a number"),
        ("8080:80/sctp", "protocol 'sctp' is neither tcp nor udp"),
        ("8080:0", "guest port '0'"),
        ("70000:80", "host port '70000'"),
        ("a:80", "host port 'a'"),
        ("10.0.0.300:80:80", "'10.0.0.300' is not an IP address"),
        ("1:2:3:4", "expected HOST_PORT:GUEST_PORT"),
        ("[::1:80:80", "'[' without ']'"),
        ("[zz::1]:80:80", "'zz::1' is not an IPv6 address"),
        ("[::1]80:80", "expected ':' after ']'"),
        ("8080:-1", "guest port '-1'"),
    ]

    @Test(arguments: bad) func rejects(_ text: String, _ reason: String) {
        #expect {
            _ = try PublishRequest(parsing: text)
        } throws: { error in
            guard let e = error as? ControlError else { return false }
            #expect(e.code == .badSpec)
            #expect(e.message.contains("bad port SPEC '\(text)'"), "\(e)")
            #expect(e.message.contains(reason), "\(e)")
            #expect(e.message.contains("HOST_PORT:GUEST_PORT"))
            return true
        }
    }

    @Test func unpublishTakesHostPortAlone() throws {
        #expect(try PublishRequest(unpublishing: "8080/udp").hostPort == 8080)
        #expect(try PublishRequest(unpublishing: "8080/udp").protocol == "udp")
        #expect(try PublishRequest(unpublishing: "8080").protocol == "tcp")
        #expect(try PublishRequest(unpublishing: "127.0.0.1:8080:80").hostIP == "127.0.0.1")
        #expect(throws: ControlError.self) { try PublishRequest(unpublishing: "0:80") }
        #expect(throws: ControlError.self) { try PublishRequest(unpublishing: "x/tcp") }
    }

    @Test func jsonSpecIsValidatedToo() {
        #expect(throws: ControlError.self) {
            try PublishRequest(hostPort: 80, guestPort: 80, protocol: "icmp").validate()
        }
        #expect(throws: ControlError.self) { try PublishRequest(hostPort: -1, guestPort: 80).validate() }
        #expect(throws: ControlError.self) { try PublishRequest(hostPort: 80, guestPort: 0).validate() }
        #expect(throws: ControlError.self) {
            try PublishRequest(hostIP: "host", hostPort: 80, guestPort: 80).validate()
        }
    }

    @Test func attachRequestBecomesSpec() throws {
        let spec = try AttachRequest(
            id: "ci-1", netns: "ns1", dhcp: true, mtu: 9000, policy: "open", mac: "02:00:00:00:00:01"
        )
        .spec()
        #expect(spec.id == "ci-1")
        #expect(spec.mode == .netns("ns1"))
        #expect(spec.dhcp && spec.mtu == 9000 && spec.policy == "open")
        #expect(spec.guestMAC == MACAddress(0x02, 0, 0, 0, 0, 1))
        let defaults = try AttachRequest(id: "a", netns: "n").spec(defaultPolicy: "public")
        #expect(!defaults.dhcp && defaults.mtu == 1500 && defaults.policy == "public" && defaults.guestMAC == nil)
        #expect(defaults.interfaceName == nil)
        // A container runtime's way: a namespace file's path and the interface name it wants.
        let cni = try AttachRequest(id: "c", netns: "/proc/4242/ns/net", ifname: "eth0").spec()
        #expect(cni.mode == .netns("/proc/4242/ns/net"))
        #expect(cni.interfaceName == "eth0")
    }

    static let badAttach: [(AttachRequest, String)] = [
        (AttachRequest(id: "", netns: "n"), "sandbox ID '' is not valid"),
        (AttachRequest(id: "a/b", netns: "n"), "sandbox ID 'a/b' is not valid"),
        (AttachRequest(id: String(repeating: "x", count: 65), netns: "n"), "is not valid"),
        (AttachRequest(id: "a", netns: "../etc"), "namespace '../etc' is not valid"),
        (AttachRequest(id: "a", netns: ""), "namespace '' is not valid"),
        (AttachRequest(id: "a", netns: "/run/netns/x\u{0}y"), "is not valid"),
        (AttachRequest(id: "a", netns: "n", ifname: "eth0:1"), "interface name 'eth0:1' is not valid"),
        (AttachRequest(id: "a", netns: "n", ifname: "a-name-too-long-for-linux"), "interface name"),
        (AttachRequest(id: "a", netns: "n", ifname: ""), "interface name '' is not valid"),
        (AttachRequest(id: "a", vm: .init(), ifname: "eth0"), "leave out ifname"),
        (AttachRequest(id: "a", netns: "n", mtu: 100), "MTU 100 is out of range"),
        (AttachRequest(id: "a", netns: "n", mtu: 70_000), "MTU 70000 is out of range"),
        (AttachRequest(id: "a", netns: "n", mac: "zz:00:00:00:00:01"), "MAC 'zz:00:00:00:00:01' is not a unicast MAC"),
        (AttachRequest(id: "a", netns: "n", mac: "01:00:5e:00:00:01"), "is not a unicast MAC"),
        (AttachRequest(id: "a", netns: "n", mac: "00:00:00:00:00:00"), "is not a unicast MAC"),
    ]

    @Test(arguments: badAttach) func attachRequestRejects(_ request: AttachRequest, _ reason: String) {
        #expect {
            _ = try request.spec()
        } throws: { error in
            guard let e = error as? ControlError else { return false }
            #expect(e.code == .invalidArgument)
            #expect(e.message.contains(reason), "\(e)")
            return true
        }
    }
}
