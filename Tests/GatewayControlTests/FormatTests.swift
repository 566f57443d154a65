// The control API's JSON shapes (the fields scripts rely on), the pcap writer against the file
// format's bytes, and the Prometheus exposition's escaping.
import Foundation
import Gateway
import GatewayControl
import Link
import Testing
import Wire

@Suite struct FormatTests {
    // SandboxInfo has no public memberwise initializer; it is Codable, as it arrives here.
    static let info = try! JSONDecoder().decode(
        SandboxInfo.self,
        from: Data(
            """
            {"id": "sb1", "mode": "netns", "shard": 1, "tap": "gwt-3", "namespace": "ns1", "mac": "52:54:00:12:34:56",
             "gatewayMAC": "02:47:57:00:00:03", "guestIPv4": "10.88.0.50", "gatewayIPv4": "10.88.0.49", "prefixLength": 28,
             "guestIPv6Prefix": "fd47:5700:0:3::/64", "gatewayIPv6": "fd47:5700:0:3::1", "mtu": 1500, "policy": "host-only"}
            """.utf8))

    func object(_ value: some Encodable) throws -> [String: Any] {
        let parsed = try JSONSerialization.jsonObject(with: Data(ControlResponse.json(value).bytes))
        return try #require(parsed as? [String: Any])
    }

    @Test func sandboxViewHasTheListFields() throws {
        let route = RouteView(hostIP: "127.0.0.1", hostPort: 8080, protocol: "tcp", sandbox: "sb1", guestPort: 80)
        let view = SandboxView(info: Self.info, dhcp: false, ports: [route])
        let o = try object(view)
        for key in ["id", "mode", "shard", "tap", "mac", "guestIPv4", "gatewayIPv4", "guestIPv6", "ports"] {
            #expect(o[key] != nil, "missing \(key)")
        }
        #expect(o["id"] as? String == "sb1")
        #expect(o["shard"] as? Int == 1)
        #expect(o["dhcp"] as? Bool == false)
        // EUI-64 from 52:54:00:12:34:56: flip the U/L bit, put ff:fe in the middle.
        #expect(o["guestIPv6"] as? String == "fd47:5700:0:3:5054:ff:fe12:3456")
        let ports = try #require(o["ports"] as? [[String: Any]])
        #expect(ports.first?["hostPort"] as? Int == 8080)
        // Round trip.
        let back = try JSONDecoder().decode(SandboxView.self, from: Data(ControlResponse.json(view).bytes))
        #expect(back == view)
    }

    @Test func routeViewHasTheRouteFields() throws {
        let o = try object(RouteView(hostIP: "::1", hostPort: 5353, protocol: "udp", sandbox: "b", guestPort: 53))
        #expect(Set(o.keys) == ["hostIP", "hostPort", "protocol", "sandbox", "guestPort"])
        #expect(o["protocol"] as? String == "udp")
    }

    @Test func errorBodyCarriesCodeAndMessage() throws {
        let response = ControlResponse.error(ControlError(.unknownSandbox, "no sandbox 'x' is attached"))
        #expect(response.status == 404)
        #expect(response.contentType == "application/json")
        let o = try object(ControlError.Body(error: ControlError(.unknownSandbox, "no sandbox 'x' is attached")))
        let e = try #require(o["error"] as? [String: Any])
        #expect(e["code"] as? String == "unknownSandbox")
        #expect(e["message"] as? String == "no sandbox 'x' is attached")
    }

    @Test(arguments: [
        (ControlError.Code.unknownSandbox, 404), (.namespaceNotFound, 404), (.sandboxExists, 409), (.portInUse, 409),
        (.invalidArgument, 400), (.badSpec, 400), (.notImplemented, 501), (.busy, 503), (.system, 500),
        (.methodNotAllowed, 405),
    ])
    func errorStatuses(_ code: ControlError.Code, _ status: Int) {
        #expect(ControlError(code, "x").httpStatus == status)
    }

    @Test func gatewayErrorsMapToCodes() {
        #expect(ControlError(GatewayError(.unknownSandbox, "m")).code == .unknownSandbox)
        #expect(ControlError(GatewayError(.sandboxExists, "m")).code == .sandboxExists)
        #expect(ControlError(GatewayError(.portInUse, "m")).code == .portInUse)
        #expect(ControlError(GatewayError(.link, "m")).code == .system)
        #expect(ControlError(GatewayError(.link, "the message")).message == "the message")
    }

    /// A link-layer failure keeps its LinkError beneath the GatewayError, and the API still reads
    /// the words it always did.
    @Test func linkErrorsStayTheCauseAndReadTheSame() {
        let link = LinkError(.nameTaken, operation: "create TAP", subject: "gw-t0", reason: "Device or resource busy")
        let error = GatewayError.link("attach sandbox 'ci-1'", link)
        #expect(error.code == .link)
        #expect(error.message == "attach sandbox 'ci-1': create TAP 'gw-t0': Device or resource busy")
        guard case .link(let cause) = error.cause else {
            Issue.record("no link cause: \(String(describing: error.cause))")
            return
        }
        #expect(cause.code == .nameTaken && cause.subject == "gw-t0")
        // Wrapped again by an outer step, the cause survives and the words nest as before.
        let outer = GatewayError.link("restore VM sandbox 'ci-1' on gw-v0", error)
        #expect(outer.message == "restore VM sandbox 'ci-1' on gw-v0: attach sandbox 'ci-1': create TAP 'gw-t0': Device or resource busy")
        if case .link(let c) = outer.cause { #expect(c.subject == "gw-t0") } else { Issue.record("cause lost") }
        let api = ControlError(outer)
        #expect(api.code == .system)
        #expect(api.message == outer.message)
    }

    @Test func pcapFileHeaderIsTcpdumps() {
        let h = PcapWriter.fileHeader(snapLength: 65_535)
        // Little-endian host: magic d4 c3 b2 a1, version 2.4, snaplen, LINKTYPE_ETHERNET.
        #expect(
            h == [
                0xD4, 0xC3, 0xB2, 0xA1, 0x02, 0x00, 0x04, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
                0xFF, 0xFF, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
            ])
    }

    @Test func pcapRecordCarriesTimeAndLengths() {
        // 1_700_000_000.123456789 s: microseconds are truncated, not rounded.
        let r = PcapWriter.record(timestamp: 1_700_000_000_123_456_789, bytes: [1, 2, 3], originalLength: 1514)
        #expect(r.count == 16 + 3)
        #expect(Array(r[0..<4]) == [0x00, 0xF1, 0x53, 0x65])  // 1_700_000_000
        #expect(Array(r[4..<8]) == [0x40, 0xE2, 0x01, 0x00])  // 123_456
        #expect(Array(r[8..<12]) == [3, 0, 0, 0])
        #expect(Array(r[12..<16]) == [0xEA, 0x05, 0, 0])  // 1514
        #expect(Array(r[16...]) == [1, 2, 3])
        // The original length is never below what was captured.
        let short = PcapWriter.record(timestamp: 0, bytes: [9, 9], originalLength: 1)
        #expect(Array(short[12..<16]) == [2, 0, 0, 0])
    }

    @Test func prometheusEscapesAndDeclaresOnce() {
        var p = PrometheusExposition()
        p.family("x_total", .counter, help: "A help\nline with \\.")
        p.family("x_total", .counter, help: "again")
        p.sample("x_total", ["sandbox": "a\"b\\c\nd", "reason": "r"], 3)
        p.sample("x_total", 4)
        p.sample("x_total", ["k": "v"], UInt64.max)
        #expect(
            p.text == """
                # HELP x_total A help\\nline with \\\\.
                # TYPE x_total counter
                x_total{sandbox="a\\"b\\\\c\\nd",reason="r"} 3
                x_total 4
                x_total{k="v"} 18446744073709551615

                """)
    }

    @Test func requestSplitsPathAndQuery() {
        let r = ControlRequest(method: "GET", uri: "/v1/sandboxes/a%2Eb/capture?count=5&x=a%20b&flag")
        #expect(r.path == "/v1/sandboxes/a%2Eb/capture")
        #expect(r.segments == ["v1", "sandboxes", "a.b", "capture"])
        #expect(r.query == ["count": "5", "x": "a b", "flag": ""])
    }
}
