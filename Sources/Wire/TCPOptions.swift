// The TCP options area (RFC 9293 §3.2): MSS, window scale and timestamps (RFC 7323), SACK
// (RFC 2018). Parsed into plain fields; emitted in the layout Linux uses so captures round-trip.

/// The timestamps option's two values (RFC 7323 §3.2).
public struct TCPTimestamp: Hashable, Sendable {
    /// TSval: the sender's clock.
    public var value: UInt32
    /// TSecr: the most recent TSval received from the peer (zero on a first SYN).
    public var echo: UInt32

    @inline(__always)
    public init(value: UInt32, echo: UInt32) {
        self.value = value
        self.echo = echo
    }
}

/// The options this stack understands. Unknown kinds are skipped on parse and never emitted.
public struct TCPOptions: Hashable, Sendable {
    /// Option kinds (IANA "TCP Option Kind Numbers").
    public enum Kind {
        public static let endOfList: UInt8 = 0
        public static let noOperation: UInt8 = 1
        public static let maximumSegmentSize: UInt8 = 2
        public static let windowScale: UInt8 = 3
        public static let sackPermitted: UInt8 = 4
        public static let sack: UInt8 = 5
        public static let timestamp: UInt8 = 8
    }

    /// The data offset is 4 bits of 32-bit words, so a header is at most 60 bytes (RFC 9293 §3.1).
    public static let maximumLength = 40
    /// RFC 7323 §2.3: a received shift above 14 is used as 14.
    public static let maximumWindowShift: UInt8 = 14

    public var mss: UInt16?
    /// The shift as received; use `windowShift` for the value to apply.
    public var windowScale: UInt8?
    public var sackPermitted: Bool
    public var timestamp: TCPTimestamp?
    /// On emit, only as many blocks as fit in the 40-byte area after the other options are
    /// written (RFC 2018 §3: with timestamps that is three); the first blocks are kept.
    public var sackBlocks: SACKBlocks

    @inline(__always)
    public init() {
        mss = nil
        windowScale = nil
        sackPermitted = false
        timestamp = nil
        sackBlocks = SACKBlocks()
    }

    public init(
        mss: UInt16? = nil, windowScale: UInt8? = nil, sackPermitted: Bool = false,
        timestamp: TCPTimestamp? = nil, sackBlocks: SACKBlocks = SACKBlocks()
    ) {
        self.mss = mss
        self.windowScale = windowScale
        self.sackPermitted = sackPermitted
        self.timestamp = timestamp
        self.sackBlocks = sackBlocks
    }

    /// The window scale clamped as RFC 7323 §2.3 requires.
    public var windowShift: UInt8? { windowScale.map { min($0, Self.maximumWindowShift) } }

    // MARK: Parsing

    /// Parses an options area (the header bytes after the first 20). Unknown kinds are skipped by
    /// their length; a length below 2, an option running past the area or a known kind with the
    /// wrong length throws `.badOption`. A repeated kind replaces the earlier one.
    public static func parse(_ area: UnsafeRawBufferPointer) throws(WireError) -> TCPOptions {
        let r = CheckedReader(area, layer: "tcp")
        guard area.count <= maximumLength else { throw WireError(.badLength, "tcp") }
        var o = TCPOptions()
        let n = area.count
        var i = 0
        while i < n {
            let kind = try r.u8(i)
            if kind == Kind.endOfList { break }
            if kind == Kind.noOperation {
                i += 1
                continue
            }
            // RFC 9293 §3.2: every other kind has a length octet that counts kind and length.
            guard i + 1 < n else { throw WireError(.badOption, "tcp") }
            let length = Int(try r.u8(i + 1))
            guard length >= 2, length <= n - i else { throw WireError(.badOption, "tcp") }
            let body = i + 2
            switch kind {
            case Kind.maximumSegmentSize:
                guard length == 4 else { throw WireError(.badOption, "tcp") }
                o.mss = try r.be16(body)
            case Kind.windowScale:
                guard length == 3 else { throw WireError(.badOption, "tcp") }
                o.windowScale = try r.u8(body)
            case Kind.sackPermitted:
                guard length == 2 else { throw WireError(.badOption, "tcp") }
                o.sackPermitted = true
            case Kind.sack:
                // RFC 2018 §3: 2 + 8n bytes. n ≤ 4 follows from the 40-byte bound checked above.
                guard length >= 10, (length - 2) % 8 == 0 else { throw WireError(.badOption, "tcp") }
                o.sackBlocks.removeAll()
                var b = body
                while b < i + length {
                    o.sackBlocks.append(SACKBlock(start: try r.be32(b), end: try r.be32(b + 4)))
                    b += 8
                }
            case Kind.timestamp:
                guard length == 10 else { throw WireError(.badOption, "tcp") }
                o.timestamp = TCPTimestamp(value: try r.be32(body), echo: try r.be32(body + 4))
            default:
                break
            }
            i += length
        }
        return o
    }

    // MARK: Emitting

    // Linux's layouts, each piece a multiple of 4 so no trailing padding is ever needed:
    //   MSS(4) | SACK-permitted+TS(12) or NOP NOP TS(12) or NOP NOP SACK-permitted(4) | NOP WS(4)
    //   | NOP NOP SACK(2 + 8n + 2).
    private var fixedLength: Int {
        var n = 0
        if mss != nil { n += 4 }
        if timestamp != nil { n += 12 } else if sackPermitted { n += 4 }
        if windowScale != nil { n += 4 }
        return n
    }

    /// How many SACK blocks emit writes: all of them, or as many as fit.
    public var emittedSACKBlockCount: Int {
        guard !sackBlocks.isEmpty else { return 0 }
        let room = (Self.maximumLength - fixedLength - 4) / 8
        return max(0, min(sackBlocks.count, room))
    }

    /// Bytes `emit` writes: a multiple of 4, at most 40.
    public var encodedLength: Int {
        let blocks = emittedSACKBlockCount
        return fixedLength + (blocks > 0 ? 4 + 8 * blocks : 0)
    }

    /// Writes the options area; returns `encodedLength`.
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        let total = encodedLength
        guard buffer.count >= total else { throw WireError(.noSpace, "tcp") }
        let nop = Kind.noOperation
        var i = 0
        if let mss {
            buffer.setU8(Kind.maximumSegmentSize, i)
            buffer.setU8(4, i + 1)
            buffer.setBE16(mss, i + 2)
            i += 4
        }
        if let timestamp {
            if sackPermitted {
                buffer.setU8(Kind.sackPermitted, i)
                buffer.setU8(2, i + 1)
            } else {
                buffer.setU8(nop, i)
                buffer.setU8(nop, i + 1)
            }
            buffer.setU8(Kind.timestamp, i + 2)
            buffer.setU8(10, i + 3)
            buffer.setBE32(timestamp.value, i + 4)
            buffer.setBE32(timestamp.echo, i + 8)
            i += 12
        } else if sackPermitted {
            buffer.setU8(nop, i)
            buffer.setU8(nop, i + 1)
            buffer.setU8(Kind.sackPermitted, i + 2)
            buffer.setU8(2, i + 3)
            i += 4
        }
        if let windowScale {
            buffer.setU8(nop, i)
            buffer.setU8(Kind.windowScale, i + 1)
            buffer.setU8(3, i + 2)
            buffer.setU8(windowScale, i + 3)
            i += 4
        }
        let blocks = emittedSACKBlockCount
        if blocks > 0 {
            buffer.setU8(nop, i)
            buffer.setU8(nop, i + 1)
            buffer.setU8(Kind.sack, i + 2)
            buffer.setU8(UInt8(2 + 8 * blocks), i + 3)
            i += 4
            for b in sackBlocks.prefix(blocks) {
                buffer.setBE32(b.start, i)
                buffer.setBE32(b.end, i + 4)
                i += 8
            }
        }
        return i
    }
}
