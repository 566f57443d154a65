// Aligned columns for gatewayctl's human output: a header row and left-aligned cells, two spaces
// apart, so `list` and `routes` read like `ip -br addr`.
import GatewayControl

struct TextTable {
    var header: [String]
    var rows: [[String]] = []
    /// Columns at least this wide, so rows printed one table at a time line up.
    var minimumWidths: [Int] = []
    var showsHeader = true

    init(_ header: String...) { self.header = header }

    init(_ header: [String], minimumWidths: [Int]) {
        self.header = header
        self.minimumWidths = minimumWidths
    }

    mutating func add(_ cells: String...) { rows.append(cells) }
    mutating func add(_ cells: [String]) { rows.append(cells) }

    var rendered: String {
        let all = (showsHeader ? [header] : []) + rows
        var widths = header.indices.map { $0 < minimumWidths.count ? minimumWidths[$0] : 0 }
        for row in all {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        return all.map { row in
            var line = ""
            for (i, cell) in row.enumerated() {
                line += cell
                if i < row.count - 1 { line += String(repeating: " ", count: widths[i] - cell.count + 2) }
            }
            return line
        }.joined(separator: "\n")
    }
}

/// Prints a Codable value as gatewayd prints JSON (sorted keys, indented).
func printJSON<T: Encodable>(_ value: T) {
    print(String(decoding: ControlResponse.json(value).bytes, as: UTF8.self), terminator: "")
}
