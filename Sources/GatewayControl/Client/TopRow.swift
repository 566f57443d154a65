// What `gatewayctl top` shows for a sandbox: its rates between two samples of every sandbox's
// counters (`GET /v1/stats`), and how they are written; kept apart from the terminal for tests.
import Foundation
import Gateway

public struct TopRow: Sendable, Hashable, Codable {
    public var id: String
    public var shard: Int?
    /// Frame bytes per second on its link: from the guest (`rx`) and to it (`tx`).
    public var rxBytesPerSecond: Double?
    public var txBytesPerSecond: Double?
    /// Payload bytes per second over host sockets: to the host (`up`) and from it (`down`).
    public var upBytesPerSecond: Double?
    public var downBytesPerSecond: Double?
    /// TCP flows and UDP sessions open now.
    public var flows: Int
    /// TCP flows opened per second.
    public var newFlowsPerSecond: Double?
    /// Frames and flows dropped or refused, since attach and per second.
    public var drops: Int
    public var dropsPerSecond: Double?
    /// TCP buffer memory it holds now.
    public var heldBytes: Int

    /// One row per sandbox of `current`. A sandbox that was not in `previous`, or whose counters
    /// went back (detached and attached again under its ID), has no rates yet: nil, not a guess.
    public static func rows(previous: [SandboxStats], current: [SandboxStats], seconds: Double) -> [TopRow] {
        let before = Dictionary(previous.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        return current.map { now in
            let then = before[now.id]
            func rate(_ value: (SandboxStats) -> Int) -> Double? {
                guard let then, seconds > 0 else { return nil }
                let delta = value(now) - value(then)
                return delta >= 0 ? Double(delta) / seconds : nil
            }
            let clamped = { (v: UInt64) in Int(clamping: v) }
            return TopRow(
                id: now.id, shard: now.shard, rxBytesPerSecond: rate(\.bytesIn), txBytesPerSecond: rate(\.bytesOut),
                upBytesPerSecond: rate { clamped($0.bytesToHost) }, downBytesPerSecond: rate { clamped($0.bytesFromHost) },
                flows: now.tcpFlowsActive + now.udpSessions, newFlowsPerSecond: rate(\.tcpFlowsTotal),
                drops: totalDrops(now), dropsPerSecond: rate(totalDrops), heldBytes: now.memory.heldBytes)
        }
    }

    static func totalDrops(_ s: SandboxStats) -> Int { s.drops.values.reduce(0, +) }

    /// What `--sort` accepts, and the order each gives (busiest first; IDs break ties).
    public enum Order: String, CaseIterable, Sendable {
        case id, up, down, flows, drops

        public func sorted(_ rows: [TopRow]) -> [TopRow] {
            let key: (TopRow) -> Double =
                switch self {
                case .id: { _ in 0 }
                case .up: { $0.upBytesPerSecond ?? -1 }
                case .down: { $0.downBytesPerSecond ?? -1 }
                case .flows: { Double($0.flows) }
                case .drops: { $0.dropsPerSecond ?? -1 }
                }
            return rows.sorted { a, b in
                let (ka, kb) = (key(a), key(b))
                return ka != kb ? ka > kb : a.id < b.id
            }
        }
    }

    public static let header = ["SANDBOX", "SHARD", "RX/s", "TX/s", "UP/s", "DOWN/s", "FLOWS", "NEW/s", "DROPS", "DROPS/s", "MEM"]

    /// The cells under ``header``.
    public var cells: [String] {
        [
            id, shard.map(String.init) ?? "-", Self.byteRate(rxBytesPerSecond), Self.byteRate(txBytesPerSecond),
            Self.byteRate(upBytesPerSecond), Self.byteRate(downBytesPerSecond), String(flows),
            newFlowsPerSecond.map { String(format: "%.0f", $0) } ?? "-", String(drops),
            dropsPerSecond.map { String(format: "%.0f", $0) } ?? "-", Self.bytes(Double(heldBytes)),
        ]
    }

    /// "0 B/s", "12.5 kB/s", "1.20 GB/s": decimal units, as `docker stats` writes them.
    public static func byteRate(_ value: Double?) -> String {
        guard let value else { return "-" }
        return bytes(value) + "/s"
    }

    static func bytes(_ value: Double) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var v = max(value, 0)
        var unit = 0
        while v >= 1000 && unit < units.count - 1 {
            v /= 1000
            unit += 1
        }
        if unit == 0 { return String(format: "%.0f B", v) }
        return String(format: v < 10 ? "%.2f" : v < 100 ? "%.1f" : "%.0f", v) + " " + units[unit]
    }
}
