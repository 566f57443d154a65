// Which name the first bytes of a client's TCP stream ask for, whichever of TLS or HTTP/1 it
// speaks: what a domain rule checks before any byte goes upstream.

public enum ServerNamePeek: Equatable, Sendable {
    /// A TLS ClientHello; its SNI host name, or nil without one.
    case tls(String?)
    /// An HTTP/1 request head; its host, or nil without one.
    case http(String?)
    /// Not enough bytes yet to tell.
    case needMore
    /// Neither TLS nor HTTP/1, or malformed: no name can be checked.
    case unidentified

    /// Most bytes worth holding before giving up on a name.
    public static let maxHeldBytes = TLSClientHello.maxHelloLength + 5 * 4

    public static func peek(_ bytes: UnsafeRawBufferPointer) -> ServerNamePeek {
        guard let first = bytes.first else { return .needMore }
        if first == TLSClientHello.handshakeRecord {
            switch TLSClientHello.peek(bytes) {
            case .serverName(let name): return .tls(name)
            case .needMore: return bytes.count >= maxHeldBytes ? .unidentified : .needMore
            case .notClientHello: return .unidentified
            }
        }
        switch HTTPRequestHead.peek(bytes) {
        case .host(let name): return .http(name)
        case .needMore: return .needMore
        case .notRequest: return .unidentified
        }
    }

    /// The name asked for, when there is one.
    public var name: String? {
        switch self {
        case .tls(let name), .http(let name): name
        case .needMore, .unidentified: nil
        }
    }
}
