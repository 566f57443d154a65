import Foundation

// A small blocking HTTP/1.1 client for the control socket, for gatewayctl and the tests: one
// request per connection, JSON in and out, and a streamed body for packet capture.
#if canImport(Glibc)
    import Glibc
#endif

public struct ControlClient: Sendable {
    public let socketPath: String
    /// Seconds to wait for an answer (nil: forever, as a capture may run that long).
    public var timeout: Double?

    public init(socketPath: String, timeout: Double? = 120) {
        self.socketPath = socketPath
        self.timeout = timeout
    }

    /// The socket gatewayctl uses when neither --control nor GATEWAYD_CONTROL is given.
    public static let defaultSocketPath = "/run/gatewayd/control.sock"

    // MARK: - JSON calls

    /// Sends a request and decodes a 2xx answer as `T`; any other answer becomes the daemon's error.
    public func call<T: Decodable>(
        _ method: String, _ path: String, body: (some Encodable)? = Optional<Int>.none, as type: T.Type
    ) throws(ControlError) -> T {
        var bytes: [UInt8]? = nil
        if let body {
            do {
                bytes = Array(try JSONEncoder().encode(body))
            } catch {
                throw ControlError(.invalidArgument, "cannot encode the request: \(error)")
            }
        }
        let (status, data) = try send(method, path, body: bytes)
        guard (200..<300).contains(status) else { throw Self.error(status: status, body: data) }
        do {
            return try JSONDecoder().decode(type, from: Data(data))
        } catch {
            throw ControlError(.badResponse, "gatewayd answered \(method) \(path) with an unexpected body: \(error)")
        }
    }

    /// The daemon's error from an error answer, or a description of what came back instead.
    static func error(status: Int, body: [UInt8]) -> ControlError {
        if let e = try? JSONDecoder().decode(ControlError.Body.self, from: Data(body)) { return e.error }
        let text = String(decoding: body.prefix(200), as: UTF8.self)
        return ControlError(.badResponse, "gatewayd answered HTTP \(status): \(text)")
    }

    /// True when something accepts connections on the socket.
    public func isReachable() -> Bool {
        guard let fd = try? connectSocket() else { return false }
        close(fd)
        return true
    }

    // MARK: - Raw requests

    /// One request; returns the status and the whole body.
    public func send(_ method: String, _ path: String, body: [UInt8]? = nil) throws(ControlError) -> (Int, [UInt8]) {
        var collected: [UInt8] = []
        let status = try stream(method, path, body: body) { chunk in
            collected += chunk
            return true
        }
        return (status, collected)
    }

    /// One request whose body is handed to `onBody` as it arrives; `onBody` returns false to stop
    /// reading (the connection is then closed). Returns the status; an error status's body is
    /// turned into the daemon's error and thrown instead.
    @discardableResult
    public func stream(
        _ method: String, _ path: String, body: [UInt8]? = nil, onBody: ([UInt8]) -> Bool
    ) throws(ControlError) -> Int {
        let fd = try connectSocket()
        defer { close(fd) }
        if let timeout {
            var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: gatewayd\r\nConnection: close\r\nAccept: */*\r\n"
        if let body {
            request += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        }
        request += "\r\n"
        try writeAll(fd, Array(request.utf8) + (body ?? []))

        var reader = ResponseReader(fd: fd, socketPath: socketPath)
        let (status, headers) = try reader.head()
        let success = (200..<300).contains(status)
        var errorBody: [UInt8] = []
        let sink: ([UInt8]) -> Bool = { chunk in
            if success { return onBody(chunk) }
            errorBody += chunk
            return errorBody.count < 1 << 20
        }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            try reader.chunkedBody(sink)
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            try reader.fixedBody(length, sink)
        } else {
            try reader.bodyToEOF(sink)
        }
        if !success { throw Self.error(status: status, body: errorBody) }
        return status
    }

    private func unreachable(_ why: String) -> ControlError {
        ControlError(
            .unreachable,
            "cannot reach gatewayd at \(socketPath): is it running? start it with `gatewayd` or set --control (\(why))")
    }

    private func connectSocket() throws(ControlError) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw ControlError(.invalidArgument, "control socket path \(socketPath) is too long (107 bytes at most)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.enumerated() { raw[i] = b }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlError(.system, "socket(): \(String(cString: strerror(errno)))") }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 {
            let e = errno
            close(fd)
            switch e {
            case ENOENT: throw unreachable("no socket file there")
            case ECONNREFUSED: throw unreachable("nothing listens on the socket")
            case EACCES, EPERM:
                throw ControlError(
                    .unreachable,
                    "permission denied on \(socketPath): run as root or as a member of the socket's group")
            default: throw unreachable(String(cString: strerror(e)))
            }
        }
        return fd
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(ControlError) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ControlError(
                    .unreachable, "gatewayd at \(socketPath) closed the connection: \(String(cString: strerror(errno)))"
                )
            }
            sent += n
        }
    }
}

/// Reads an HTTP/1.1 response off a socket, incrementally.
private struct ResponseReader {
    let fd: Int32
    let socketPath: String
    var buffer: [UInt8] = []
    var eof = false

    init(fd: Int32, socketPath: String) {
        self.fd = fd
        self.socketPath = socketPath
    }

    /// Reads more into `buffer`; false at end of stream.
    mutating func fill() throws(ControlError) -> Bool {
        if eof { return false }
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                buffer += chunk[..<n]
                return true
            }
            if n == 0 {
                eof = true
                return false
            }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                throw ControlError(.unreachable, "gatewayd at \(socketPath) did not answer in time")
            }
            throw ControlError(
                .unreachable, "reading from gatewayd at \(socketPath): \(String(cString: strerror(errno)))")
        }
    }

    func truncated() -> ControlError {
        ControlError(.badResponse, "gatewayd at \(socketPath) closed the connection in the middle of its answer")
    }

    mutating func line() throws(ControlError) -> [UInt8] {
        while true {
            if let i = buffer.firstIndex(of: 0x0A) {
                var l = Array(buffer[..<i])
                buffer.removeFirst(i + 1)
                if l.last == 0x0D { l.removeLast() }
                return l
            }
            guard buffer.count < 64 * 1024 else {
                throw ControlError(.badResponse, "gatewayd sent a header line over 64 KiB")
            }
            guard try fill() else { throw truncated() }
        }
    }

    mutating func head() throws(ControlError) -> (Int, [String: String]) {
        let statusLine = String(decoding: try line(), as: UTF8.self)
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw ControlError(.badResponse, "\(socketPath) does not speak HTTP: got '\(statusLine.prefix(80))'")
        }
        var headers: [String: String] = [:]
        while true {
            let l = try line()
            if l.isEmpty { break }
            let text = String(decoding: l, as: UTF8.self)
            guard let colon = text.firstIndex(of: ":") else { continue }
            headers[text[..<colon].lowercased()] = text[text.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        return (status, headers)
    }

    mutating func fixedBody(_ length: Int, _ sink: ([UInt8]) -> Bool) throws(ControlError) {
        var remaining = length
        while remaining > 0 {
            if buffer.isEmpty { guard try fill() else { throw truncated() } }
            let n = min(remaining, buffer.count)
            let chunk = Array(buffer[..<n])
            buffer.removeFirst(n)
            remaining -= n
            if !sink(chunk) { return }
        }
    }

    mutating func bodyToEOF(_ sink: ([UInt8]) -> Bool) throws(ControlError) {
        while true {
            if !buffer.isEmpty {
                let chunk = buffer
                buffer.removeAll()
                if !sink(chunk) { return }
            }
            guard try fill() else { return }
        }
    }

    /// RFC 9112 §7.1: hex size, CRLF, data, CRLF; a zero size ends the body.
    mutating func chunkedBody(_ sink: ([UInt8]) -> Bool) throws(ControlError) {
        while true {
            let sizeLine = String(decoding: try line(), as: UTF8.self)
            let hex = sizeLine.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard let size = Int(hex, radix: 16), size >= 0 else {
                throw ControlError(.badResponse, "gatewayd sent a bad chunk size '\(sizeLine.prefix(20))'")
            }
            if size == 0 { return }
            var keepGoing = true
            try fixedBody(size) { chunk in
                keepGoing = sink(chunk)
                return keepGoing
            }
            if !keepGoing { return }
            _ = try line()
        }
    }
}
