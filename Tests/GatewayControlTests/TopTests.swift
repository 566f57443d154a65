// gatewayctl top: rates from two samples of every sandbox's counters, how they are written and
// ordered, and the live view against a running gatewayd with a guest downloading from the host.
import Foundation
@testable import Gateway
import GatewayControl
import GatewayTestSupport
import Testing

@Suite struct TopRowTests {
    static func stats(
        _ id: String, shard: Int = 0, bytesIn: Int = 0, bytesOut: Int = 0, toHost: UInt64 = 0, fromHost: UInt64 = 0,
        flows: Int = 0, total: Int = 0, drops: [String: Int] = [:]
    ) -> SandboxStats {
        var s = SandboxStats(
            id: id, framesIn: 0, framesOut: 0, bytesIn: bytesIn, bytesOut: bytesOut, tcpFlowsActive: flows,
            tcpFlowsTotal: total, udpSessions: 1, bytesToHost: toHost, bytesFromHost: fromHost, drops: drops)
        s.shard = shard
        return s
    }

    @Test func ratesAreDeltasOverTheInterval() throws {
        let before = [Self.stats("a", bytesIn: 1000, toHost: 500, total: 3, drops: ["malformed": 1])]
        let after = [
            Self.stats("a", shard: 1, bytesIn: 5000, bytesOut: 2000, toHost: 2500, fromHost: 8000, flows: 2, total: 7,
                drops: ["malformed": 3, "tcpDenied": 2]),
            Self.stats("b"),
        ]
        let rows = TopRow.rows(previous: before, current: after, seconds: 2)
        let a = try #require(rows.first { $0.id == "a" })
        #expect(a.shard == 1)
        #expect(a.rxBytesPerSecond == 2000 && a.txBytesPerSecond == 1000)
        #expect(a.upBytesPerSecond == 1000 && a.downBytesPerSecond == 4000)
        #expect(a.flows == 3)  // two TCP flows and one UDP session
        #expect(a.newFlowsPerSecond == 2)
        #expect(a.drops == 5 && a.dropsPerSecond == 2)
        // New since the last sample: no rate yet, rather than one made up from zero.
        let b = try #require(rows.first { $0.id == "b" })
        #expect(b.rxBytesPerSecond == nil && b.dropsPerSecond == nil)
        #expect(b.cells[2] == "-")
    }

    @Test func countersThatWentBackHaveNoRate() {
        let rows = TopRow.rows(
            previous: [Self.stats("a", bytesIn: 9000)], current: [Self.stats("a", bytesIn: 100)], seconds: 1)
        #expect(rows.first?.rxBytesPerSecond == nil)
    }

    @Test func ratesAreWrittenInDecimalUnits() {
        #expect(TopRow.byteRate(nil) == "-")
        #expect(TopRow.byteRate(0) == "0 B/s")
        #expect(TopRow.byteRate(999) == "999 B/s")
        #expect(TopRow.byteRate(1000) == "1.00 kB/s")
        #expect(TopRow.byteRate(12_500) == "12.5 kB/s")
        #expect(TopRow.byteRate(250_000_000) == "250 MB/s")
        #expect(TopRow.byteRate(1.2e9) == "1.20 GB/s")
    }

    @Test func ordersPutTheBusiestFirst() {
        let rows = TopRow.rows(
            previous: [Self.stats("a"), Self.stats("b"), Self.stats("c")],
            current: [Self.stats("a", toHost: 10), Self.stats("b", toHost: 300), Self.stats("c", toHost: 300, flows: 9)],
            seconds: 1)
        #expect(TopRow.Order.up.sorted(rows).map(\.id) == ["b", "c", "a"])
        #expect(TopRow.Order.flows.sorted(rows).map(\.id) == ["c", "a", "b"])
        #expect(TopRow.Order.id.sorted(rows.reversed()).map(\.id) == ["a", "b", "c"])
    }
}

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct TopDaemonTests {
    @Test func showsEverySandboxWithItsShardAndTheRateOfADownload() throws {
        let h = try DaemonHarness()
        let background = GatewayTestSupport.BackgroundProcesses()
        defer {
            background.killAll()
            h.tearDown()
        }
        try h.start()
        let tag = h.scratch.tag
        let busy = try h.scratch.namespace().name!
        let idle = try h.scratch.namespace().name!
        #expect(try h.ctl("attach", "tb-\(tag)", "--netns", busy).status == 0)
        #expect(try h.ctl("attach", "ti-\(tag)", "--netns", idle).status == 0)
        let list = try JSONDecoder().decode([SandboxView].self, from: Data(try h.ctl("list", "--json").stdout.utf8))
        let busyView = try #require(list.first { $0.id == "tb-\(tag)" })

        // One call answers for every sandbox, with its shard.
        let all = try JSONDecoder().decode(
            [SandboxStats].self,
            from: Data(try TestHost.run(["curl", "-sS", "--unix-socket", h.socketPath, "http://gatewayd/v1/stats"]).utf8))
        #expect(all.map(\.id) == ["tb-\(tag)", "ti-\(tag)"])
        #expect(all.first?.shard == busyView.shard)

        // A download the guest reads at 4 MB/s for about 10 s, so both samples fall inside it.
        // curl keeps that rate in bursts (it reads, then sleeps), so a one-second sample may see none.
        let www = h.directory + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try Data(count: 40_000_000).write(to: URL(fileURLWithPath: www + "/blob"))
        let port = Int(TestHost.freePort())
        _ = try background.start(["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", www])
        try TestHost.waitForListener(port: UInt16(port))
        _ = try background.start([
            "ip", "netns", "exec", busy, "curl", "-s", "-o", "/dev/null", "--limit-rate", "4M",
            "http://\(busyView.gatewayIPv4):\(port)/blob",
        ])
        #expect(eventually(seconds: 10) {
            let s = try? JSONDecoder().decode(SandboxStats.self, from: Data((try? h.ctl("stats", "tb-\(tag)", "--json").stdout ?? "")?.utf8 ?? "".utf8))
            return (s?.bytesFromHost ?? 0) > 0
        })

        let top = try h.ctl("top", "--count", "2", "--interval", "1", "--json", "--sort", "down")
        try #require(top.status == 0, "\(top.stderr)")
        let refreshes = try top.stdout.split(separator: "\n").map { try JSONDecoder().decode([TopRow].self, from: Data($0.utf8)) }
        #expect(refreshes.count == 2)
        for rows in refreshes {
            // Both sandboxes in every refresh, on their shards; the idle one moved nothing.
            #expect(Set(rows.map(\.id)) == ["tb-\(tag)", "ti-\(tag)"])
            let b = try #require(rows.first { $0.id == "tb-\(tag)" })
            #expect(b.shard == busyView.shard)
            #expect(b.flows >= 1)
            #expect(rows.first { $0.id == "ti-\(tag)" }?.downBytesPerSecond == 0)
        }
        // The download shows, far above what goes up (ACKs are not payload), and sorts first.
        let busiest = refreshes.flatMap { $0.prefix(1) }.filter { ($0.downBytesPerSecond ?? 0) > 500_000 }
        #expect(!busiest.isEmpty, "\(refreshes)")
        #expect(busiest.allSatisfy { $0.id == "tb-\(tag)" && ($0.upBytesPerSecond ?? 0) < 10_000 })

        // One table, with the columns the help describes.
        let once = try h.ctl("top", "--no-stream", "--interval", "0.2")
        #expect(once.status == 0, "\(once.stderr)")
        let lines = once.stdout.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.first?.split(separator: " ").map(String.init) == TopRow.header, "\(once.stdout)")
        #expect(try h.ctl("top", "--sort", "nonsense").status != 0)
    }
}
