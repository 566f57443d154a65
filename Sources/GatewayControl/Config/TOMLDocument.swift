// The part of TOML (v1.0.0, toml.io/en/v1.0.0) gatewayd's config file uses, read with the line of
// every key kept, so that a bad key or value can be reported as "FILE:LINE: key …".
//
// Supported: comments, bare and quoted keys, `[table]` and `[table.sub]` headers, `[[array]]`
// tables, basic and literal strings, integers (with `_`, `0x`, `0o`, `0b`), booleans and
// arrays (over several lines, trailing comma allowed). Anything else (floats, dates, inline
// tables, multi-line strings, dotted keys on the left of `=`) is refused with its line.

/// A parsed document: the root table, every key remembering its line.
public struct TOMLDocument: Sendable {
    public indirect enum Value: Sendable, Equatable {
        case string(String)
        case integer(Int)
        case boolean(Bool)
        case array([Value])
        case table(Table)
        case tableArray([Table])

        /// The TOML type's name, for messages ("expected a string, found an integer").
        public var typeName: String {
            switch self {
            case .string: "a string"
            case .integer: "an integer"
            case .boolean: "a boolean"
            case .array: "an array"
            case .table: "a table"
            case .tableArray: "an array of tables"
            }
        }
    }

    /// A table's keys in the order written, each with the line it was written on.
    public struct Table: Sendable, Equatable {
        public struct Entry: Sendable, Equatable {
            public var key: String
            public var value: Value
            public var line: Int
        }

        public var entries: [Entry] = []
        /// The line of the table's header (0 for the root).
        public var line: Int

        public init(line: Int) { self.line = line }

        public subscript(key: String) -> Entry? { entries.first { $0.key == key } }

        fileprivate func index(of key: String) -> Int? { entries.firstIndex { $0.key == key } }
    }

    public var root: Table

    /// A syntax error: the line and what was wrong there.
    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    public init(parsing text: String) throws(SyntaxError) {
        var parser = Parser(bytes: Array(text.utf8))
        root = try parser.document()
    }
}

/// A cursor over the document's bytes that knows its line.
private struct Parser {
    let bytes: [UInt8]
    var at = 0
    var line = 1

    init(bytes: [UInt8]) { self.bytes = bytes }

    typealias Table = TOMLDocument.Table
    typealias Value = TOMLDocument.Value

    func fail(_ reason: String) -> TOMLDocument.SyntaxError { TOMLDocument.SyntaxError(line: line, reason: reason) }

    var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

    mutating func advance() {
        if bytes[at] == UInt8(ascii: "\n") { line += 1 }
        at += 1
    }

    /// Spaces and tabs only: a key/value pair ends with its line.
    mutating func skipBlanks() {
        while let c = peek, c == 0x20 || c == 0x09 { advance() }
    }

    mutating func skipComment() {
        if peek == UInt8(ascii: "#") {
            while let c = peek, c != UInt8(ascii: "\n") { advance() }
        }
    }

    /// Blank lines, comments and line ends between statements (and inside arrays).
    mutating func skipTrivia() {
        while true {
            skipBlanks()
            skipComment()
            if peek == UInt8(ascii: "\r") || peek == UInt8(ascii: "\n") { advance() } else { return }
        }
    }

    /// After a statement: blanks, an optional comment, then a line end or the end of input.
    mutating func endOfStatement() throws(TOMLDocument.SyntaxError) {
        skipBlanks()
        skipComment()
        if peek == UInt8(ascii: "\r") { advance() }
        guard peek == nil || peek == UInt8(ascii: "\n") else {
            throw fail(
                "unexpected '\(String(decoding: [peek!], as: UTF8.self))' after a value: one key = value per line")
        }
    }

    mutating func document() throws(TOMLDocument.SyntaxError) -> Table {
        var root = Table(line: 0)
        // The table that keys go into: a path from the root; the last component of a [[x]]
        // path addresses the array's last element.
        var current: [String] = []
        var definedTables: Set<[String]> = [[]]
        while true {
            skipTrivia()
            guard let c = peek else { return root }
            if c == UInt8(ascii: "[") {
                let headerLine = line
                advance()
                let isArray = peek == UInt8(ascii: "[")
                if isArray { advance() }
                skipBlanks()
                let path = try keyPath()
                skipBlanks()
                guard peek == UInt8(ascii: "]") else { throw fail("expected ']' to close the table header") }
                advance()
                if isArray {
                    guard peek == UInt8(ascii: "]") else {
                        throw fail("expected ']]' to close the array-of-tables header")
                    }
                    advance()
                }
                try endOfStatement()
                if isArray {
                    try appendTableArrayElement(&root, path: path[...], line: headerLine)
                } else {
                    guard definedTables.insert(path).inserted else {
                        throw TOMLDocument.SyntaxError(
                            line: headerLine, reason: "table [\(path.joined(separator: "."))] is defined twice")
                    }
                    try defineTable(&root, path: path[...], line: headerLine)
                }
                current = path
            } else {
                let keyLine = line
                let path = try keyPath()
                guard path.count == 1 else {
                    throw fail(
                        "dotted keys are not supported here: write [\(path.dropLast().joined(separator: "."))] first")
                }
                skipBlanks()
                guard peek == UInt8(ascii: "=") else { throw fail("expected '=' after key '\(path[0])'") }
                advance()
                skipBlanks()
                let v = try value()
                try endOfStatement()
                try insert(&root, at: current[...], key: path[0], value: v, line: keyLine)
            }
        }
    }

    // MARK: Tables

    private func tableKind(_ v: Value) -> String { v.typeName }

    /// Creates the table at `path` (and missing parents), or fails if a non-table is there.
    mutating func defineTable(
        _ table: inout Table, path: ArraySlice<String>, line: Int
    ) throws(TOMLDocument.SyntaxError) {
        guard let head = path.first else { return }
        let rest = path.dropFirst()
        if let i = table.index(of: head) {
            switch table.entries[i].value {
            case .table(var sub):
                try defineTable(&sub, path: rest, line: line)
                table.entries[i].value = .table(sub)
            case .tableArray(var list) where !list.isEmpty && !rest.isEmpty:
                try defineTable(&list[list.count - 1], path: rest, line: line)
                table.entries[i].value = .tableArray(list)
            default:
                throw TOMLDocument.SyntaxError(
                    line: line,
                    reason: "'\(head)' is already \(table.entries[i].value.typeName) (line \(table.entries[i].line))")
            }
        } else {
            var sub = Table(line: line)
            try defineTable(&sub, path: rest, line: line)
            table.entries.append(.init(key: head, value: .table(sub), line: line))
        }
    }

    mutating func appendTableArrayElement(
        _ table: inout Table, path: ArraySlice<String>, line: Int
    )
        throws(TOMLDocument.SyntaxError)
    {
        guard let head = path.first else { return }
        let rest = path.dropFirst()
        let i: Int
        if let found = table.index(of: head) {
            i = found
        } else {
            table.entries.append(
                .init(key: head, value: rest.isEmpty ? .tableArray([]) : .table(Table(line: line)), line: line))
            i = table.entries.count - 1
        }
        switch table.entries[i].value {
        case .tableArray(var list) where rest.isEmpty:
            list.append(Table(line: line))
            table.entries[i].value = .tableArray(list)
        case .tableArray(var list) where !list.isEmpty:
            try appendTableArrayElement(&list[list.count - 1], path: rest, line: line)
            table.entries[i].value = .tableArray(list)
        case .table(var sub) where !rest.isEmpty:
            try appendTableArrayElement(&sub, path: rest, line: line)
            table.entries[i].value = .table(sub)
        default:
            throw TOMLDocument.SyntaxError(
                line: line,
                reason: "'\(head)' is already \(table.entries[i].value.typeName) (line \(table.entries[i].line))")
        }
    }

    mutating func insert(
        _ table: inout Table, at path: ArraySlice<String>, key: String, value: Value, line: Int
    )
        throws(TOMLDocument.SyntaxError)
    {
        guard let head = path.first else {
            if let existing = table[key] {
                throw TOMLDocument.SyntaxError(
                    line: line, reason: "key '\(key)' is set twice (first on line \(existing.line))")
            }
            table.entries.append(.init(key: key, value: value, line: line))
            return
        }
        guard let i = table.index(of: head) else { return }
        switch table.entries[i].value {
        case .table(var sub):
            try insert(&sub, at: path.dropFirst(), key: key, value: value, line: line)
            table.entries[i].value = .table(sub)
        case .tableArray(var list) where !list.isEmpty:
            try insert(&list[list.count - 1], at: path.dropFirst(), key: key, value: value, line: line)
            table.entries[i].value = .tableArray(list)
        default:
            break
        }
    }

    // MARK: Keys

    mutating func keyPath() throws(TOMLDocument.SyntaxError) -> [String] {
        var parts = [try key()]
        while true {
            skipBlanks()
            guard peek == UInt8(ascii: ".") else { return parts }
            advance()
            skipBlanks()
            parts.append(try key())
        }
    }

    mutating func key() throws(TOMLDocument.SyntaxError) -> String {
        guard let c = peek else { throw fail("expected a key, found the end of the file") }
        if c == UInt8(ascii: "\"") { return try basicString() }
        if c == UInt8(ascii: "'") { return try literalString() }
        let start = at
        while let c = peek, isBareKeyByte(c) { advance() }
        guard at > start else { throw fail("expected a key (letters, digits, '-', '_' or a quoted string)") }
        return String(decoding: bytes[start..<at], as: UTF8.self)
    }

    func isBareKeyByte(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
            || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
    }

    // MARK: Values

    mutating func value(depth: Int = 0) throws(TOMLDocument.SyntaxError) -> Value {
        guard let c = peek, c != UInt8(ascii: "\n"), c != UInt8(ascii: "#") else {
            throw fail("expected a value after '='")
        }
        switch c {
        case UInt8(ascii: "\""):
            if bytes[at...].starts(with: "\"\"\"".utf8) { throw fail("multi-line strings are not supported") }
            return .string(try basicString())
        case UInt8(ascii: "'"):
            if bytes[at...].starts(with: "'''".utf8) { throw fail("multi-line strings are not supported") }
            return .string(try literalString())
        case UInt8(ascii: "["):
            // Nesting is bounded so hostile input cannot exhaust the stack.
            guard depth < 16 else { throw fail("arrays nested more than 16 deep") }
            return try array(depth: depth + 1)
        case UInt8(ascii: "{"):
            throw fail("inline tables are not supported: use a [table] header")
        default:
            let start = at
            while let c = peek,
                !(c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A || c == UInt8(ascii: ",")
                    || c == UInt8(ascii: "]") || c == UInt8(ascii: "#"))
            {
                advance()
            }
            let word = String(decoding: bytes[start..<at], as: UTF8.self)
            if word == "true" { return .boolean(true) }
            if word == "false" { return .boolean(false) }
            if let n = integer(word) { return .integer(n) }
            if word.count > 1, word.first == "0", word.allSatisfy(\.isNumber) {
                throw fail("'\(word)': integers have no leading zeros (write octal as 0o755 or as a string)")
            }
            let numeric = word.first.map { $0.isNumber || $0 == "+" || $0 == "-" } ?? false
            if numeric || word == "inf" || word == "nan" {
                throw fail("'\(word)' is not supported here: floats and dates are not used by this file; quote text")
            }
            throw fail("'\(word)' is not a value: quote strings (\"...\")")
        }
    }

    func integer(_ word: String) -> Int? {
        var text = Substring(word)
        var negative = false
        if text.first == "+" || text.first == "-" {
            negative = text.first == "-"
            text = text.dropFirst()
        }
        var radix = 10
        if text.hasPrefix("0x") {
            radix = 16
        } else if text.hasPrefix("0o") {
            radix = 8
        } else if text.hasPrefix("0b") {
            radix = 2
        }
        if radix != 10 {
            guard !negative, word.first != "+" else { return nil }
            text = text.dropFirst(2)
        } else if text.count > 1, text.first == "0" {
            return nil  // TOML forbids leading zeros
        }
        // Underscores only between digits.
        guard !text.isEmpty, text.first != "_", text.last != "_", !text.contains("__") else { return nil }
        guard let magnitude = Int(text.filter { $0 != "_" }, radix: radix) else { return nil }
        return negative ? -magnitude : magnitude
    }

    mutating func array(depth: Int) throws(TOMLDocument.SyntaxError) -> Value {
        advance()  // [
        var items: [Value] = []
        while true {
            skipTrivia()
            guard let c = peek else { throw fail("array not closed: expected ']'") }
            if c == UInt8(ascii: "]") {
                advance()
                return .array(items)
            }
            items.append(try value(depth: depth))
            skipTrivia()
            if peek == nil { throw fail("array not closed: expected ']'") }
            if peek == UInt8(ascii: ",") {
                advance()
            } else if peek != UInt8(ascii: "]") {
                throw fail("expected ',' or ']' in array")
            }
        }
    }

    mutating func basicString() throws(TOMLDocument.SyntaxError) -> String {
        advance()  // "
        var out: [UInt8] = []
        while true {
            guard let c = peek, c != UInt8(ascii: "\n") else {
                throw fail("string not closed: expected '\"' on the same line")
            }
            advance()
            if c == UInt8(ascii: "\"") { break }
            guard c == UInt8(ascii: "\\") else {
                out.append(c)
                continue
            }
            guard let e = peek else { throw fail("string not closed") }
            advance()
            switch e {
            case UInt8(ascii: "\""): out.append(e)
            case UInt8(ascii: "\\"): out.append(e)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"), UInt8(ascii: "U"):
                let digits = e == UInt8(ascii: "u") ? 4 : 8
                guard at + digits <= bytes.count,
                    let code = UInt32(String(decoding: bytes[at..<at + digits], as: UTF8.self), radix: 16),
                    let scalar = Unicode.Scalar(code)
                else { throw fail("bad \\\(String(decoding: [e], as: UTF8.self)) escape in string") }
                for _ in 0..<digits { advance() }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default:
                throw fail("unknown escape '\\\(String(decoding: [e], as: UTF8.self))' in string")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    mutating func literalString() throws(TOMLDocument.SyntaxError) -> String {
        advance()  // '
        let start = at
        while let c = peek, c != UInt8(ascii: "'") {
            guard c != UInt8(ascii: "\n") else { throw fail("string not closed: expected \"'\" on the same line") }
            advance()
        }
        guard peek != nil else { throw fail("string not closed") }
        let text = String(decoding: bytes[start..<at], as: UTF8.self)
        advance()
        return text
    }
}
