// The config keys of descriptor budgets and control connection timeouts: read into the daemon's
// and the gateway's settings, and bad values reported with their line and key.
import Gateway
import GatewayControl
import Testing

@Suite struct DescriptorConfigTests {
    @Test func keysAreRead() throws {
        var c = DaemonConfiguration()
        try c.apply(
            toml: """
                control-idle-timeout-ms = 1500
                control-request-timeout-ms = 250
                [descriptors]
                per-sandbox = 300
                control-reserve = 128
                """, file: "t.toml")
        #expect(c.controlIdleTimeout == .milliseconds(1500))
        #expect(c.controlRequestTimeout == .milliseconds(250))
        #expect(c.descriptors.perSandbox == 300 && c.descriptors.controlReserve == 128)
        #expect(c.gatewayConfiguration.descriptors.perSandbox == 300)
        #expect(c.gatewayConfiguration.descriptors.controlReserve == 128)
    }

    @Test func defaults() {
        let c = DaemonConfiguration()
        #expect(c.descriptors.perSandbox == nil && c.descriptors.controlReserve == 64)
        #expect(c.controlIdleTimeout == .seconds(60) && c.controlRequestTimeout == .seconds(10))
    }

    @Test func badValuesNameTheirKeyAndLine() {
        let cases: [(String, String, Int)] = [
            ("[descriptors]\nper-sandbox = 0", "descriptors.per-sandbox", 2),
            ("[descriptors]\ncontrol-reserve = 8", "descriptors.control-reserve", 2),
            ("[descriptors]\nper-sandbx = 10", "descriptors.per-sandbx", 2),
            ("shards = 2\ncontrol-idle-timeout-ms = 0", "control-idle-timeout-ms", 2),
            ("control-request-timeout-ms = \"10\"", "control-request-timeout-ms", 1),
        ]
        for (text, key, line) in cases {
            var c = DaemonConfiguration()
            #expect {
                try c.apply(toml: text, file: "t.toml")
            } throws: { error in
                guard let e = error as? ConfigError else { return false }
                return e.key == key && e.line == line
            }
        }
    }
}
