// The host an HTTP/1 client asks for, read from the head of its first request: the Host header
// (RFC 9112 §3.2), or the authority of an absolute-form target. Every read is bounds-checked.

public enum HTTPRequestHead {
    public enum Peek: Equatable, Sendable {
        /// A request head, with the host it names (lower-cased, no port, no trailing dot), or nil
        /// when it names none.
        case host(String?)
        /// The bytes so far begin like a request, but its head has not ended yet.
        case needMore
        /// Not an HTTP/1 request, or a malformed one.
        case notRequest
    }

    /// Longest request head read; a longer one is treated as not a request rather than held
    /// without bound (servers commonly refuse heads over 8 KiB as well).
    public static let maxHeadLength = 8 * 1024
    /// Longest method token accepted ("PROPPATCH" and extension methods fit).
    static let maxMethodLength = 16

    public static func peek(_ bytes: UnsafeRawBufferPointer) -> Peek {
        do throws(WireError) {
            return try head(CheckedReader(bytes, layer: "http"))
        } catch {
            return .notRequest
        }
    }

    /// `peek` with every read checked: a read past the bytes throws, and means no request.
    private static func head(_ r: CheckedReader) throws(WireError) -> Peek {
        // Method: upper-case letters then one space. Decided from the first bytes, so a binary
        // protocol is told apart at once instead of waiting for a head that never ends.
        var i = 0
        while i < r.count, i <= maxMethodLength {
            let b = try r.u8(i)
            if b == UInt8(ascii: " ") { break }
            guard b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") else { return .notRequest }
            i += 1
        }
        guard i < r.count else { return i > maxMethodLength ? .notRequest : .needMore }
        guard i > 0, try r.u8(i) == UInt8(ascii: " ") else { return .notRequest }

        let limit = min(r.count, maxHeadLength)
        guard let lineEnd = try find(crlf, in: r, from: i, to: limit) else {
            return r.count >= maxHeadLength ? .notRequest : .needMore
        }
        // Request line: METHOD SP target SP HTTP/1.x
        let line = try r.reader(i + 1, lineEnd - i - 1)
        guard let space = line.buffer.lastIndex(of: UInt8(ascii: " ")), space > 0,
              line.count - space - 1 == 8,
              try line.bytes(space + 1, 5).elementsEqual("HTTP/".utf8)
        else { return .notRequest }
        let target = try line.bytes(0, space)

        // Header fields up to the empty line.
        var position = lineEnd + 2
        var host: [UInt8]?
        while true {
            guard let end = try find(crlf, in: r, from: position, to: limit) else {
                return r.count >= maxHeadLength ? .notRequest : .needMore
            }
            if end == position { break }
            let field = try r.reader(position, end - position)
            if let colon = field.buffer.firstIndex(of: UInt8(ascii: ":")), isHost(try field.bytes(0, colon)) {
                // Two Host fields are a request smuggling shape (RFC 9112 §3.2 says reject).
                guard host == nil else { return .notRequest }
                host = Array(trimmed(try field.bytes(from: colon + 1)[...]))
            }
            position = end + 2
        }
        if let host { return authority(host).map { .host($0) } ?? .notRequest }
        // HTTP/1.0 may omit Host; an absolute-form target still names one.
        if let fromTarget = absoluteAuthority(target) { return authority(fromTarget).map { .host($0) } ?? .notRequest }
        return .host(nil)
    }

    private static let crlf: [UInt8] = [0x0D, 0x0A]

    private static func find(
        _ needle: [UInt8], in bytes: CheckedReader, from: Int, to limit: Int
    ) throws(WireError) -> Int? {
        var i = from
        while i + 1 < limit {
            let pair = (try bytes.u8(i), try bytes.u8(i + 1))
            if pair.0 == needle[0] && pair.1 == needle[1] { return i }
            i += 1
        }
        return nil
    }

    private static func isHost(_ name: UnsafeRawBufferPointer) -> Bool {
        guard name.count == 4 else { return false }
        return name.map { $0 | 0x20 }.elementsEqual("host".utf8)
    }

    private static func trimmed(_ value: Slice<UnsafeRawBufferPointer>) -> Slice<UnsafeRawBufferPointer> {
        var v = value
        while let f = v.first, f == 0x20 || f == 0x09 { v = v.dropFirst() }
        while let l = v.last, l == 0x20 || l == 0x09 { v = v.dropLast() }
        return v
    }

    /// "http://example.org:8080/path" → "example.org:8080".
    private static func absoluteAuthority(_ target: UnsafeRawBufferPointer) -> [UInt8]? {
        let t = Array(target)
        guard let schemeEnd = t.firstIndex(of: UInt8(ascii: ":")), schemeEnd + 2 < t.count,
              t[schemeEnd + 1] == UInt8(ascii: "/"), t[schemeEnd + 2] == UInt8(ascii: "/")
        else { return nil }
        let rest = t[(schemeEnd + 3)...]
        let end = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? rest.endIndex
        return Array(rest[..<end])
    }

    /// The host of an authority (no userinfo allowed, port dropped); nil when malformed.
    private static func authority(_ value: [UInt8]) -> String? {
        guard !value.contains(UInt8(ascii: "@")) else { return nil }
        var host = value[...]
        if host.first == UInt8(ascii: "[") {
            // An IPv6 literal names no domain; the address check is all a domain rule can do.
            guard let close = host.firstIndex(of: UInt8(ascii: "]")) else { return nil }
            host = host[host.startIndex...close]
            return String(decoding: host, as: UTF8.self).lowercased()
        }
        if let colon = host.lastIndex(of: UInt8(ascii: ":")) {
            let port = host[(colon + 1)...]
            guard !port.isEmpty, port.count <= 5, port.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                  port.reduce(0, { $0 * 10 + Int($1 - 0x30) }) <= 65535
            else { return nil }
            host = host[..<colon]
        }
        return HostName.normalized(host)
    }
}
