// `gatewayctl flows`: the flow log — every flow's verdict and end and every DNS query — of one
// sandbox or all, as a table or JSON lines, optionally followed live.
import ArgumentParser
import Foundation
import Gateway
import GatewayControl

struct Flows: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the flow log: flow verdicts, flow ends and DNS queries.",
        discussion: "Without --follow, the latest records and exit; with it, those and then each new one until Ctrl-C.")

    @OptionGroup var options: ControlOptions

    @Argument(help: "Only this sandbox's records (default: every sandbox's).")
    var id: String?

    @Flag(name: .shortAndLong, help: "Keep printing records as they come.")
    var follow = false

    @Option(help: "How many of the latest records to show first.")
    var limit = 100

    @Flag(help: "Print JSON (an array; with --follow, one object per line) instead of a table.")
    var json = false

    func validate() throws {
        if limit < 0 { throw ValidationError("--limit must not be negative") }
    }

    func run() throws {
        if let id { _ = try perform { () throws(ControlError) in try checkID(id) } }
        let base = id.map { "/v1/sandboxes/\($0)/flows" } ?? "/v1/flows"
        guard follow else {
            let records = try perform { () throws(ControlError) in
                try options.client.call("GET", base + "?limit=\(limit)", as: [FlowRecord].self)
            }
            if json { return printJSON(records) }
            var t = Self.table()
            for r in records { Self.add(r, to: &t) }
            print(t.rendered)
            return
        }
        var client = options.client
        client.timeout = nil
        var pending: [UInt8] = []
        let decoder = JSONDecoder()
        if !json { print(Self.table().rendered) }
        try perform { () throws(ControlError) in
            try client.stream("GET", base + "?follow=1&limit=\(limit)") { chunk in
                pending += chunk
                while let newline = pending.firstIndex(of: 0x0A) {
                    let line = Array(pending[..<newline])
                    pending.removeSubrange(...newline)
                    if json {
                        print(String(decoding: line, as: UTF8.self))
                    } else if let record = try? decoder.decode(FlowRecord.self, from: Data(line)) {
                        var t = Self.table(header: false)
                        Self.add(record, to: &t)
                        print(t.rendered)
                    } else {
                        printError(String(decoding: line, as: UTF8.self))
                    }
                }
                fflush(nil)
                return true
            }
        }
    }

    static let columns = ["TIME", "SANDBOX", "EVENT", "PROTO", "GUEST", "DESTINATION", "NAME", "VERDICT", "WHY/END"]

    /// Fixed widths when following, so lines printed one at a time still line up.
    static func table(header: Bool = true) -> TextTable {
        var t = TextTable(columns, minimumWidths: [24, 12, 5, 5, 21, 21, 20, 7, 0])
        t.showsHeader = header
        return t
    }

    static func add(_ r: FlowRecord, to t: inout TextTable) {
        let why: String
        switch r.event {
        case .end:
            let ms = r.durationMs.map { String(format: "%.1fms", $0) } ?? ""
            why = "\(r.ending?.rawValue ?? "") out=\(r.bytesOut ?? 0) in=\(r.bytesIn ?? 0) \(ms)"
        case .dns:
            let answer = (r.answers ?? []).joined(separator: ",")
            why = [r.queryType, r.responseCode, answer.isEmpty ? nil : answer, r.reason?.rawValue]
                .compactMap { $0 }.joined(separator: " ")
        case .flow:
            why = r.rule ?? r.reason?.rawValue ?? ""
        }
        t.add([
            r.time, r.sandbox, r.event.rawValue, r.protocol, r.guest ?? "-", r.destination ?? "-", r.name ?? "-",
            r.verdict?.rawValue ?? "-", why,
        ])
    }
}
