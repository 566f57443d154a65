// Bounds on IP reassembly and what the reassemblers count, shared by the IPv4 and IPv6 sides;
// a guest that sends fragments can never make the stack hold more than these.

/// How much reassembly state one reassembler (one per address family per stack) may keep.
public struct ReassemblyLimits: Sendable, Equatable {
    /// Datagrams in progress; a new one beyond this evicts the oldest.
    public var maximumDatagrams: Int
    /// Largest reassembled datagram, IP header included. IPv4's total length and IPv6's
    /// payload length are 16 bits (RFC 791 §3.1, RFC 8200 §4.5), so nothing above 65535 is legal.
    public var maximumDatagramLength: Int
    /// Bytes held across all datagrams in progress; beyond this the oldest are evicted.
    public var maximumBufferedBytes: Int
    /// A datagram not complete this long after its first fragment is dropped. RFC 791 §3.2
    /// suggests a timer of the order of 15 s; 30 s is the common host value (Linux, BSD).
    public var timeout: Duration
    /// Payload bytes a fragment other than the last must carry. Every link carries 68-byte
    /// datagrams (RFC 791 §3.2), so a sender with a 20-byte header never needs fragments under
    /// 48 bytes; smaller ones are the "tiny fragment" attack of RFC 1858 §3.1.
    public var minimumFragmentPayload: Int

    public init(
        maximumDatagrams: Int = 64, maximumDatagramLength: Int = 65535, maximumBufferedBytes: Int = 1 << 20,
        timeout: Duration = .seconds(30), minimumFragmentPayload: Int = 48
    ) {
        self.maximumDatagrams = maximumDatagrams
        self.maximumDatagramLength = maximumDatagramLength
        self.maximumBufferedBytes = maximumBufferedBytes
        self.timeout = timeout
        self.minimumFragmentPayload = minimumFragmentPayload
    }
}

/// What a reassembler did with the fragments it was given. Every dropped datagram is counted
/// once, under the first reason found.
public struct ReassemblyCounters: Sendable, Equatable {
    /// Fragments accepted into a datagram (duplicates not included).
    public var fragments = 0
    /// Datagrams handed on whole.
    public var completed = 0
    /// Exact copies of a fragment already held, ignored as RFC 8200 §4.5 allows.
    public var duplicates = 0
    /// Datagrams dropped because two fragments overlapped (RFC 5722).
    public var overlapping = 0
    /// Datagrams dropped because a fragment disagreed with the end another last fragment set,
    /// or a second last fragment named a different end.
    public var inconsistent = 0
    /// Datagrams dropped for an empty fragment, a fragment other than the last shorter than
    /// `minimumFragmentPayload` or not a multiple of 8 bytes, or a first fragment too short to
    /// hold the upper-layer header (RFC 1858 §3, RFC 7112).
    public var tooSmall = 0
    /// Datagrams dropped because they would end past `maximumDatagramLength`.
    public var tooLong = 0
    /// Datagrams dropped because they were not complete within `timeout`.
    public var timedOut = 0
    /// Datagrams dropped to stay within `maximumDatagrams` or `maximumBufferedBytes`.
    public var evicted = 0
    /// Fragments whose headers could not be made sense of (IPv6 only: no Fragment header found
    /// where the parser said one was).
    public var malformed = 0

    public init() {}

    /// All datagrams given up on, whatever the reason.
    public var dropped: Int { overlapping + inconsistent + tooSmall + tooLong + timedOut + evicted + malformed }
}
