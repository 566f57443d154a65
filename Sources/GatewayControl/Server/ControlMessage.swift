// An HTTP request and response as the control service sees them, free of any transport: the
// NIO server fills a request in and writes the response out; tests call the service directly.
import Foundation

public struct ControlRequest: Sendable {
    public var method: String
    /// The path without the query, percent-decoded per segment by `segments`.
    public var path: String
    public var query: [String: String]
    public var body: [UInt8]

    public init(method: String, uri: String, body: [UInt8] = []) {
        self.method = method
        self.body = body
        if let q = uri.firstIndex(of: "?") {
            path = String(uri[..<q])
            var query: [String: String] = [:]
            for pair in uri[uri.index(after: q)...].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = Self.percentDecode(kv[0])
                query[key] = kv.count > 1 ? Self.percentDecode(kv[1]) : ""
            }
            self.query = query
        } else {
            path = uri
            query = [:]
        }
    }

    /// Path segments, percent-decoded ("/v1/sandboxes/a%2Fb" → ["v1", "sandboxes", "a/b"]).
    public var segments: [String] { path.split(separator: "/").map { Self.percentDecode($0) } }

    static func percentDecode(_ s: Substring) -> String {
        let plusAsSpace = s.replacing("+", with: " ")
        return plusAsSpace.removingPercentEncoding ?? String(plusAsSpace)
    }
}

/// Writes a streamed response body; `write` blocks until the bytes are handed to the socket and
/// returns false once the client has gone.
public protocol ControlBodyWriter: Sendable {
    func write(_ bytes: [UInt8]) -> Bool
    var isOpen: Bool { get }
}

public struct ControlResponse: Sendable {
    public enum Body: Sendable {
        case bytes([UInt8])
        /// Produced on a thread-pool thread, which it may block (a packet capture runs for as long
        /// as the client reads).
        case stream(@Sendable (any ControlBodyWriter) -> Void)
    }

    public var status: Int
    public var contentType: String
    public var body: Body

    public init(status: Int, contentType: String, body: Body) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    public static let jsonType = "application/json"

    public static func json<T: Encodable>(_ value: T, status: Int = 200) -> ControlResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard var data = try? encoder.encode(value) else {
            return error(ControlError(.system, "could not encode the response"))
        }
        data.append(0x0A)
        return ControlResponse(status: status, contentType: jsonType, body: .bytes(Array(data)))
    }

    public static func error(_ e: ControlError) -> ControlResponse {
        json(ControlError.Body(error: e), status: e.httpStatus)
    }

    /// The body when it is not streamed (tests read it).
    public var bytes: [UInt8] {
        if case .bytes(let b) = body { return b }
        return []
    }
}
