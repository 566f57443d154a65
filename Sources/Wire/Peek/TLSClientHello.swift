// The server name (SNI) a TLS client asks for, read from the first bytes of its stream: the
// handshake records carrying its ClientHello (RFC 8446 §4.1.2, RFC 6066 §3). Every read is
// checked against the bytes present; short input asks for more, malformed input is an error.

public enum TLSClientHello {
    /// What the first bytes of a stream say.
    public enum Peek: Equatable, Sendable {
        /// A ClientHello, with its host_name (lower-cased, no trailing dot) or nil without SNI.
        case serverName(String?)
        /// A ClientHello may follow, but not all of it has arrived.
        case needMore
        /// Not a TLS ClientHello, or a malformed one.
        case notClientHello
    }

    /// Largest ClientHello read: RFC 8446 allows up to 2^24 bytes, but real ones are a few KiB
    /// (post-quantum key shares included); a longer one is treated as not a ClientHello rather
    /// than held without bound.
    public static let maxHelloLength = 16 * 1024

    static let handshakeRecord: UInt8 = 22
    static let clientHello: UInt8 = 1
    static let serverNameExtension: UInt16 = 0
    static let hostNameType: UInt8 = 0

    /// Reads the ClientHello from `bytes`, the start of a client's stream. The handshake may span
    /// several records; their payloads are joined (at most `maxHelloLength` bytes).
    public static func peek(_ bytes: UnsafeRawBufferPointer) -> Peek {
        var hello: [UInt8] = []
        var offset = 0
        var needed: Int?
        while true {
            // Record header: type, legacy version (3.x), length (RFC 8446 §5.1).
            guard bytes.count - offset >= 5 else {
                // One byte is enough to tell a stream that is not TLS at all.
                let notTLS = offset < bytes.count && bytes[offset] != handshakeRecord
                return notTLS ? .notClientHello : .needMore
            }
            guard bytes[offset] == handshakeRecord, bytes[offset + 1] == 3 else { return .notClientHello }
            let length = Int(bytes[offset + 3]) << 8 | Int(bytes[offset + 4])
            guard length > 0, length <= 16384 + 2048 else { return .notClientHello }
            let available = min(length, bytes.count - offset - 5)
            hello.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[(offset + 5)..<(offset + 5 + available)]))
            if needed == nil, hello.count >= 4 {
                guard hello[0] == clientHello else { return .notClientHello }
                let n = Int(hello[1]) << 16 | Int(hello[2]) << 8 | Int(hello[3])
                guard n <= maxHelloLength else { return .notClientHello }
                needed = 4 + n
            }
            if let needed, hello.count >= needed {
                return hello.withUnsafeBytes { parseHello(UnsafeRawBufferPointer(rebasing: $0[4..<needed])) }
            }
            guard available == length else { return .needMore }
            offset += 5 + length
            guard hello.count <= maxHelloLength + 4 else { return .notClientHello }
        }
    }

    /// The ClientHello body (after the 4-byte handshake header).
    static func parseHello(_ body: UnsafeRawBufferPointer) -> Peek {
        var r = CheckedReader(body)
        guard r.skip(2 + 32),  // legacy_version, random
              r.skipVector(lengthBytes: 1),  // legacy_session_id
              r.skipVector(lengthBytes: 2),  // cipher_suites
              r.skipVector(lengthBytes: 1)  // legacy_compression_methods
        else { return .notClientHello }
        // A ClientHello without extensions (TLS 1.2 allowed it) names no server.
        if r.remaining == 0 { return .serverName(nil) }
        guard let extensionsLength = r.u16(), var extensions = r.sub(Int(extensionsLength)) else { return .notClientHello }
        while extensions.remaining > 0 {
            guard let type = extensions.u16(), let length = extensions.u16(), var data = extensions.sub(Int(length))
            else { return .notClientHello }
            guard type == serverNameExtension else { continue }
            guard let listLength = data.u16(), var list = data.sub(Int(listLength)) else { return .notClientHello }
            while list.remaining > 0 {
                guard let nameType = list.u8(), let nameLength = list.u16(), let name = list.bytes(Int(nameLength))
                else { return .notClientHello }
                guard nameType == hostNameType else { continue }
                guard let host = HostName.normalized(name) else { return .notClientHello }
                return .serverName(host)
            }
            return .serverName(nil)
        }
        return .serverName(nil)
    }
}

/// A cursor over bytes whose every read checks the bytes remaining and fails with nil.
struct CheckedReader {
    private let base: UnsafeRawBufferPointer
    private var position = 0

    init(_ base: UnsafeRawBufferPointer) { self.base = base }

    var remaining: Int { base.count - position }

    mutating func u8() -> UInt8? {
        guard remaining >= 1 else { return nil }
        defer { position += 1 }
        return base[position]
    }

    mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { position += 2 }
        return UInt16(base[position]) << 8 | UInt16(base[position + 1])
    }

    mutating func skip(_ n: Int) -> Bool {
        guard n >= 0, remaining >= n else { return false }
        position += n
        return true
    }

    mutating func bytes(_ n: Int) -> UnsafeRawBufferPointer? {
        guard n >= 0, remaining >= n else { return nil }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: base[position..<(position + n)])
    }

    mutating func sub(_ n: Int) -> CheckedReader? { bytes(n).map(CheckedReader.init) }

    mutating func skipVector(lengthBytes: Int) -> Bool {
        let n: Int
        if lengthBytes == 1 {
            guard let v = u8() else { return false }
            n = Int(v)
        } else {
            guard let v = u16() else { return false }
            n = Int(v)
        }
        return skip(n)
    }
}

/// Host names as SNI and Host headers carry them, brought to the form DNS pins use.
public enum HostName {
    /// Lower-cased ASCII without a trailing dot; nil when empty, longer than 253 characters, or
    /// holding bytes a host name cannot (anything but letters, digits, '-', '_' and '.').
    public static func normalized(_ bytes: some Collection<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        for b in bytes {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): out.append(b | 0x20)
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
                out.append(b)
            default: return nil
            }
        }
        if out.last == UInt8(ascii: ".") { out.removeLast() }
        guard !out.isEmpty, out.count <= 253, out.first != UInt8(ascii: ".") else { return nil }
        return String(decoding: out, as: UTF8.self)
    }
}
