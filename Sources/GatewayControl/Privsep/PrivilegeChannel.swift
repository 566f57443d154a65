// One end of the socket between the supervisor and its worker: whole JSON messages, each with at
// most one file descriptor beside it. Bounded: a longer message or a second descriptor is an error.
#if canImport(Glibc)
    import Glibc
#endif
import CGatewayShims
import Foundation
import Link

struct PrivilegeChannel: Sendable {
    /// Enough for any request and reply, the config file's text among them.
    static let maxMessage = 1 << 20

    let fd: Int32

    enum Failure: Error, CustomStringConvertible {
        /// The other side closed its end (it exited).
        case closed
        case system(String)
        case malformed(String)

        var description: String {
            switch self {
            case .closed: "the other process has gone"
            case .system(let s): s
            case .malformed(let s): "malformed message: \(s)"
            }
        }
    }

    /// A connected pair for a supervisor and the worker it spawns; both ends close-on-exec (the
    /// spawn duplicates the worker's end onto a fixed number).
    static func pair() throws(Failure) -> (supervisor: Int32, worker: Int32) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw .system("socketpair: \(String(cString: strerror(errno)))")
        }
        return (fds[0], fds[1])
    }

    func send<Message: Encodable>(_ message: Message, descriptor: Int32 = -1) throws(Failure) {
        let bytes: Data
        do {
            bytes = try JSONEncoder().encode(message)
        } catch {
            throw .malformed("cannot encode: \(error)")
        }
        guard bytes.count <= Self.maxMessage else { throw .malformed("\(bytes.count) bytes is over the limit") }
        let sent = bytes.withUnsafeBytes { gw_send_with_fd(fd, $0.baseAddress, $0.count, descriptor) }
        if sent == -Int(EPIPE) || sent == -Int(ECONNRESET) { throw .closed }
        guard sent == bytes.count else {
            throw .system("send: \(sent < 0 ? String(cString: strerror(Int32(-sent))) : "short write")")
        }
    }

    /// The next message and the descriptor that came with it, -1 for none (the caller owns it
    /// and must adopt it at once).
    func receive<Message: Decodable>(_ type: Message.Type) throws(Failure) -> (Message, Int32) {
        var received: Int32 = -1
        var n = 0
        // Room for the largest message, left unwritten: only the pages the message lands in are
        // touched, so an ordinary reply does not clear a mebibyte first.
        let buffer = [UInt8](unsafeUninitializedCapacity: Self.maxMessage) { storage, count in
            n = gw_receive_with_fd(fd, storage.baseAddress, storage.count, &received)
            count = max(n, 0)
        }
        if n == 0 { throw .closed }
        if n == -Int(ECONNRESET) { throw .closed }
        guard n > 0 else { throw .system("receive: \(String(cString: strerror(Int32(-n))))") }
        do {
            return (try JSONDecoder().decode(Message.self, from: Data(buffer)), received)
        } catch {
            if received >= 0 { close(received) }
            throw .malformed("\(error)")
        }
    }
}
