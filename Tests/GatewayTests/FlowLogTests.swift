// The flow log without a daemon: JSON lines that decode back to the record, bounded shard queues
// and followers that count what they drop, the recent ring, reopening after a rotation, and a
// writer that sleeps while nothing happens.
import Foundation
@testable import Gateway
import GatewayTestSupport
import Testing
import Wire

struct FlowLogTests {
    static func event(_ n: Int, sandbox: String = "sb") -> FlowEvent {
        var e = FlowEvent(.flow, sandbox: sandbox, proto: .tcp, time: 1_765_000_000_123_000_000 + UInt64(n))
        e.guest = IPAddress("10.0.0.2")
        e.guestPort = UInt16(40000 + n)
        e.destination = IPAddress("2001:db8::1")
        e.destinationPort = 443
        e.verdict = .denied
        e.reason = .noPin
        e.rule = "say \"hi\"\\\n\u{1}"
        return e
    }

    @Test func jsonLineDecodesToTheRecord() throws {
        let record = Self.event(1).record
        #expect(record.time == "2025-12-06T05:46:40.123Z")
        #expect(record.guest == "10.0.0.2:40001" && record.destination == "[2001:db8::1]:443")
        let line = record.jsonLine()
        #expect(line.last == 0x0A && !line.dropLast().contains(0x0A))
        #expect(try JSONDecoder().decode(FlowRecord.self, from: Data(line)) == record)
        var end = FlowEvent(.end, sandbox: "sb", proto: .udp)
        end.bytesIn = 5
        end.bytesOut = 7
        end.duration = 1_234_567
        end.ending = .idle
        let decoded = try JSONDecoder().decode(FlowRecord.self, from: Data(end.record.jsonLine()))
        #expect(decoded == end.record && decoded.durationMs == 1.234)
    }

    @Test func fileRecentAndReopen() throws {
        let dir = NSTemporaryDirectory() + "flowlog-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var cfg = FlowLog.Configuration(path: dir + "/f.jsonl")
        cfg.recentCapacity = 3
        let log = try FlowLog(configuration: cfg, shards: 2)
        defer { log.stop() }
        for i in 0..<5 { log.queues[i % 2].post(Self.event(i, sandbox: i == 4 ? "other" : "sb")) }
        log.flush()
        let lines = try String(contentsOfFile: dir + "/f.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 5)
        // Newest last, bounded, and filtered by sandbox.
        #expect(log.recent().map(\.guest) == ["10.0.0.2:40002", "10.0.0.2:40003", "10.0.0.2:40004"])
        #expect(log.recent(sandbox: "sb").count == 2)
        #expect(log.recent(limit: 1).count == 1)
        try FileManager.default.moveItem(atPath: dir + "/f.jsonl", toPath: dir + "/f.jsonl.1")
        log.reopen()
        log.queues[0].post(Self.event(9))
        log.flush()
        #expect(try String(contentsOfFile: dir + "/f.jsonl", encoding: .utf8).split(separator: "\n").count == 1)
        #expect(try String(contentsOfFile: dir + "/f.jsonl.1", encoding: .utf8).split(separator: "\n").count == 5)
        #expect(log.counters.written == 6)
    }

    @Test func fullQueuesAndSlowFollowersDropAndCount() throws {
        var cfg = FlowLog.Configuration()
        cfg.queueCapacity = 4
        cfg.followerCapacity = 2
        cfg.interval = .seconds(3600)
        let log = try FlowLog(configuration: cfg, shards: 1)
        defer { log.stop() }
        let all = log.follow()
        let mine = log.follow(sandbox: "mine")
        for i in 0..<10 { log.queues[0].post(Self.event(i, sandbox: i == 0 ? "mine" : "sb")) }
        #expect(log.counters.dropped == 6)
        log.flush()
        #expect(all.drain().count == 2 && all.dropped == 2)
        #expect(mine.drain().count == 1 && mine.dropped == 0)
        log.unfollow(all)
        log.queues[0].post(Self.event(11))
        log.flush()
        #expect(all.drain().isEmpty)
    }

    /// An idle gateway's flow log costs no wake-ups: the writer waits for an event rather than
    /// draining empty queues on a timer, and one event makes one pass.
    @Test func anIdleWriterSleepsUntilAnEventArrives() throws {
        var cfg = FlowLog.Configuration()
        cfg.interval = .milliseconds(5)
        let log = try FlowLog(configuration: cfg, shards: 2)
        defer { log.stop() }
        usleep(200_000)
        // Draining every 5 ms, it would have passed about 40 times by now.
        #expect(log.writerPasses.load(ordering: .relaxed) == 0)
        log.queues[1].post(Self.event(1))
        #expect(eventually { log.counters.written == 1 })
        usleep(100_000)
        #expect(log.writerPasses.load(ordering: .relaxed) == 1)
        #expect(log.recent().count == 1)
    }
}
