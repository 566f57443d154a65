// Aligned columns for gatewayctl's human output: a header row and left-aligned cells, two spaces
// apart, so `list` and `routes` read like `ip -br addr`.
import GatewayControl

struct TextTable {
    var header: [String]
    var rows: [[String]] = []

    init(_ header: String...) { self.header = header }

    mutating func add(_ cells: String...) { rows.append(cells) }

    var rendered: String {
        let all = [header] + rows
        var widths = Array(repeating: 0, count: header.count)
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
