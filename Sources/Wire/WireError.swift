// The one error type every Wire parser throws: a code that says what was wrong and where.
// A struct with a code (not an enum) so that adding a case breaks no caller.

public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: UInt8
        let name: StaticString
        public var description: String { "\(name)" }
        public static func == (a: Code, b: Code) -> Bool { a.raw == b.raw }
        public func hash(into h: inout Hasher) { h.combine(raw) }

        /// Fewer bytes than the header or a length field says there are.
        public static let truncated = Code(raw: 1, name: "truncated")
        /// A length or offset field that is impossible (smaller than the header, past the buffer).
        public static let badLength = Code(raw: 2, name: "bad length")
        /// A version, type or kind this parser does not accept.
        public static let unsupported = Code(raw: 3, name: "unsupported")
        /// A checksum that does not verify.
        public static let badChecksum = Code(raw: 4, name: "bad checksum")
        /// An option whose encoding is malformed (runs past its container, bad length).
        public static let badOption = Code(raw: 5, name: "bad option")
        /// A field value the protocol forbids (reserved bits, bad magic cookie, label too long).
        public static let malformed = Code(raw: 6, name: "malformed")
        /// A DNS name compression pointer that loops or points forward.
        public static let compressionLoop = Code(raw: 7, name: "compression loop")
        /// An output buffer too small for what an emitter was asked to write.
        public static let noSpace = Code(raw: 8, name: "no space")
    }

    public let code: Code
    /// The protocol layer that failed, for counters and logs ("ipv4", "tcp", "dns").
    public let layer: StaticString

    public init(_ code: Code, _ layer: StaticString) {
        self.code = code
        self.layer = layer
    }

    public var description: String { "\(layer): \(code)" }

    /// Layers compare by text: the same literal in two modules need not share an address.
    public static func == (a: WireError, b: WireError) -> Bool {
        a.code == b.code && a.layer.description == b.layer.description
    }
    public func hash(into h: inout Hasher) { h.combine(code) }
}
