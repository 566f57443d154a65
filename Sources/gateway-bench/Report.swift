// The benchmark's output: a table for people, JSON for scripts (Tools/bench-stack.sh reads it).
import Foundation

struct Report: Codable {
    var date: String
    var kernel: String
    var cpus: Int
    var loopCPU: Int
    var guestCPU: Int
    var repeats: Int
    var sender: String
    var receiver: String
    var results: [Measurement]

    func json() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? e.encode(self)) ?? Data(), as: UTF8.self)
    }

    func table() -> String {
        var lines: [String] = []
        lines.append("gateway-bench \(date), kernel \(kernel), \(cpus) CPUs; stack loop on CPU \(loopCPU), guest tools on CPU \(guestCPU)"
            + (repeats > 1 ? "; fastest of \(repeats) runs each" : ""))
        lines.append("stack = our stack alone (diagnostic services on 10.0.2.2: discard/byte source; no host sockets)")
        lines.append("veth-tools = the same guest commands over a kernel veth to a host socat (the guest tools' ceiling)")
        lines.append("CPU s/GB = loop thread CPU per 10^9 bytes; busy = loop CPU ÷ wall time;")
        lines.append("waited s = loop thread runnable but kept off its CPU by other work (a shared machine's noise)")
        lines.append("")
        let header = ["path", "MTU", "direction", "GiB", "s", "Gbps", "CPU s/GB", "busy", "user/sys s", "waited s", "frames in", "B/frame in",
                      "frames/batch", "frames out", "B/frame out"]
        var rows = [header]
        for m in results {
            var row = [m.path, String(m.mtu), m.direction.arrow, String(format: "%.2f", Double(m.bytes) / 1_073_741_824),
                       String(format: "%.2f", m.seconds), String(format: "%.2f", m.gbps)]
            if let s = m.stack {
                row += [String(format: "%.2f", s.cpuSecondsPerGB),
                        String(format: "%.0f%%", s.loopBusy * 100),
                        String(format: "%.2f/%.2f", s.loopUserSeconds, s.loopSystemSeconds),
                        String(format: "%.2f", s.loopRunQueueWaitSeconds),
                        String(s.framesIn), String(format: "%.0f", s.bytesPerFrameIn),
                        String(format: "%.1f", s.framesPerReadBatch),
                        String(s.framesOut), String(format: "%.0f", s.bytesPerFrameOut)]
            } else {
                row += Array(repeating: "-", count: header.count - row.count)
            }
            rows.append(row)
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        for (i, row) in rows.enumerated() {
            let cells = row.enumerated().map { c, cell in
                c < 3 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                      : String(repeating: " ", count: widths[c] - cell.count) + cell
            }
            lines.append(cells.joined(separator: "  "))
            if i == 0 { lines.append(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")) }
        }
        let failures = results.compactMap(\.stack).reduce(0) { $0 + $1.writeFailures + $1.outputDropped }
        if failures > 0 { lines.append("note: \(failures) frames were dropped on output (queue full or short write)") }
        return lines.joined(separator: "\n")
    }
}
