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
        let record = CheckedReader(bytes, layer: "tls")
        var hello: [UInt8] = []
        var offset = 0
        var needed: Int?
        while true {
            // Record header: type, legacy version (3.x), length (RFC 8446 §5.1).
            guard bytes.count - offset >= 5 else {
                // One byte is enough to tell a stream that is not TLS at all.
                guard let type = try? record.u8(offset) else { return .needMore }
                return type != handshakeRecord ? .notClientHello : .needMore
            }
            guard let type = try? record.u8(offset), let major = try? record.u8(offset + 1),
                let rawLength = try? record.be16(offset + 3), type == handshakeRecord, major == 3
            else { return .notClientHello }
            let length = Int(rawLength)
            guard length > 0, length <= 16384 + 2048 else { return .notClientHello }
            let available = min(length, bytes.count - offset - 5)
            guard let fragment = try? record.bytes(offset + 5, available) else { return .notClientHello }
            hello.append(contentsOf: fragment)
            if needed == nil, hello.count >= 4 {
                guard hello[0] == clientHello else { return .notClientHello }
                let n = Int(hello[1]) << 16 | Int(hello[2]) << 8 | Int(hello[3])
                guard n <= maxHelloLength else { return .notClientHello }
                needed = 4 + n
            }
            if let needed, hello.count >= needed {
                return hello.withUnsafeBytes { all in
                    guard let body = try? CheckedReader(all, layer: "tls").reader(4, needed - 4) else {
                        return .notClientHello
                    }
                    return parseHello(body)
                }
            }
            guard available == length else { return .needMore }
            offset += 5 + length
            guard hello.count <= maxHelloLength + 4 else { return .notClientHello }
        }
    }

    /// The ClientHello body (after the 4-byte handshake header).
    static func parseHello(_ body: CheckedReader) -> Peek {
        do throws(WireError) {
            return .serverName(try serverName(body))
        } catch {
            return .notClientHello
        }
    }

    /// The host_name in a ClientHello body, nil when it names none; a vector that runs past its
    /// container, or a name that is not a host name, throws.
    static func serverName(_ body: CheckedReader) throws(WireError) -> String? {
        var r = body
        try r.skip(2 + 32)  // legacy_version, random
        try r.skipVector(lengthBytes: 1)  // legacy_session_id
        try r.skipVector(lengthBytes: 2)  // cipher_suites
        try r.skipVector(lengthBytes: 1)  // legacy_compression_methods
        // A ClientHello without extensions (TLS 1.2 allowed it) names no server.
        if r.remaining == 0 { return nil }
        var extensions = try r.readReader(Int(try r.readBE16()))
        while extensions.remaining > 0 {
            let type = try extensions.readBE16()
            var data = try extensions.readReader(Int(try extensions.readBE16()))
            guard type == serverNameExtension else { continue }
            var list = try data.readReader(Int(try data.readBE16()))
            while list.remaining > 0 {
                let nameType = try list.readU8()
                let name = try list.readBytes(Int(try list.readBE16()))
                guard nameType == hostNameType else { continue }
                guard let host = HostName.normalized(name) else { throw WireError(.malformed, "tls") }
                return host
            }
            return nil
        }
        return nil
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
