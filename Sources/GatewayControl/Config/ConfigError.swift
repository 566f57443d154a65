// A config file error: the file, the line and the key, and what would have been accepted, so an
// operator can fix it without reading the source.

public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file as given (or "<flags>" for command-line values).
    public var file: String
    /// 1-based line; nil when the error is not tied to one (the file cannot be read).
    public var line: Int?
    /// The dotted key ("addresses.ipv4-pool"); nil for syntax errors.
    public var key: String?
    public var reason: String

    public init(file: String, line: Int?, key: String?, _ reason: String) {
        self.file = file
        self.line = line
        self.key = key
        self.reason = reason
    }

    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        if let key { text += "key '\(key)': " }
        return text + reason
    }
}
