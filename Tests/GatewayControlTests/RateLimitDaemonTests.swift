// Rate limits as an operator sets them: `gatewayctl attach --rate-limit`, shown by `stats` and
// /metrics, and still in force after gatewayd restarts from its state directory after a crash.
import Foundation
import GatewayControl
import GatewayTestSupport
import Testing

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct RateLimitDaemonTests {
    @Test func attachLimitsAreShownAndSurviveARestart() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let ns = try h.scratch.namespace().name!
        let id = "rate-\(h.scratch.tag)"
        let attach = try h.ctl("attach", id, "--netns", ns, "--rate-limit", "100mbit", "--rate-limit-up", "10mbit", "--max-flows", "8")
        #expect(attach.status == 0, "\(attach.stderr)")
        let bad = try h.ctl("attach", id + "x", "--netns", ns, "--rate-limit", "fast")
        #expect(bad.status != 0 && bad.stderr.contains("rateLimit 'fast' is not a rate"), "\(bad.stderr)")

        func shown() throws -> String { try h.ctl("stats", id).stdout }
        let text = try shown()
        #expect(text.contains("up 10mbit"), "\(text)")
        #expect(try shown().contains("down 100mbit"))
        let metrics = try TestHost.run(["curl", "-sS", "--unix-socket", h.socketPath, "http://gatewayd/metrics"])
        #expect(metrics.contains("gatewayd_sandbox_rate_limited_seconds_total{sandbox=\"\(id)\",direction=\"to_host\"}"))
        #expect(metrics.contains("gatewayd_sandbox_rate_limit_drops_total{sandbox=\"\(id)\",limit=\"half_open\"} 0"))

        // After a crash the restart attaches it again from its state file, limits and all.
        h.stop(SIGKILL)
        try h.start()
        try waitFor(seconds: 20) { (try? shown())?.contains("up 10mbit") == true }
        #expect(try shown().contains("down 100mbit"))
    }
}
