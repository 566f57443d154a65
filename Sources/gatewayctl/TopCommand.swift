// top: a live per-sandbox view of traffic, flows and drops, as `docker stats` gives for containers.
import ArgumentParser
import Foundation
import Gateway
import GatewayControl

struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A live view of every sandbox: traffic rates, flows, drops and shard, refreshed every second.",
        discussion: """
            RX/TX: frame bytes on the sandbox's link, from and to the guest. UP/DOWN: payload relayed over \
            host sockets, to and from the host. FLOWS: TCP flows and UDP sessions open; NEW/s: TCP flows \
            opened. DROPS: frames and flows dropped or refused since attach. MEM: TCP buffer memory held. \
            Rates are over the last interval; '-' until a sandbox has two samples.
            """)

    @OptionGroup var options: ControlOptions

    @Flag(name: .customLong("no-stream"), help: "Print one sample (rates over one interval) and exit.")
    var noStream = false

    @Option(help: "Seconds between refreshes.")
    var interval: Double = 1

    @Option(help: "Stop after this many refreshes.")
    var count: Int?

    @Option(help: "Order rows by: \(TopRow.Order.allCases.map(\.rawValue).joined(separator: ", ")) (busiest first).")
    var sort: String = "id"

    @Flag(help: "Print each refresh as one line of JSON instead of a table.")
    var json = false

    func validate() throws {
        guard interval >= 0.1 && interval <= 3600 else { throw ValidationError("--interval must be 0.1-3600 seconds") }
        guard TopRow.Order(rawValue: sort) != nil else {
            throw ValidationError("--sort must be one of \(TopRow.Order.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func sample() throws -> (stats: [SandboxStats], at: Double) {
        let stats = try perform { () throws(ControlError) in
            try options.client.call("GET", "/v1/stats", as: [SandboxStats].self)
        }
        return (stats, Double(DispatchTime.now().uptimeNanoseconds) / 1e9)
    }

    func run() throws {
        let order = TopRow.Order(rawValue: sort) ?? .id
        let limit = noStream ? 1 : count
        // A terminal gets the view redrawn in place; a pipe or file gets one table after another.
        let redraw = isatty(STDOUT_FILENO) == 1 && !json
        var previous = try sample()
        var shown = 0
        while limit.map({ shown < $0 }) ?? true {
            Thread.sleep(forTimeInterval: interval)
            let current = try sample()
            let rows = order.sorted(TopRow.rows(previous: previous.stats, current: current.stats, seconds: current.at - previous.at))
            previous = current
            shown += 1
            if json {
                let data = (try? JSONEncoder().encode(rows)) ?? Data("[]".utf8)
                print(String(decoding: data, as: UTF8.self))
            } else {
                var t = TextTable(TopRow.header, minimumWidths: [])
                for row in rows { t.add(row.cells) }
                if redraw { print("\u{1B}[H\u{1B}[2J", terminator: "") } else if shown > 1 { print() }
                print(t.rendered)
            }
            // nil: every stream (naming stdout itself is not allowed in strict concurrency).
            fflush(nil)
        }
    }
}
