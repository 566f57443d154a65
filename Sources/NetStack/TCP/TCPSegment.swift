// The segments a TCPConnection takes in and gives out: parsed values, the payload a view of the
// frame (in) or a range of the send buffer (out), so the connection never copies bytes.
import Wire

/// A segment as the connection sees it: the parsed header plus its payload bytes.
public struct TCPSegmentIn {
    public var seq: SequenceNumber
    public var ack: SequenceNumber
    public var flags: TCPFlags
    public var window: UInt16
    public var options: TCPOptions
    public var payload: UnsafeRawBufferPointer

    public init(header: TCPHeader, payload: UnsafeRawBufferPointer) {
        seq = SequenceNumber(header.sequenceNumber)
        ack = SequenceNumber(header.acknowledgmentNumber)
        flags = header.flags
        window = header.window
        options = header.options
        self.payload = payload
    }

    public init(seq: UInt32, ack: UInt32 = 0, flags: TCPFlags, window: UInt16 = 65535, options: TCPOptions = TCPOptions(), payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        self.seq = SequenceNumber(seq)
        self.ack = SequenceNumber(ack)
        self.flags = flags
        self.window = window
        self.options = options
        self.payload = payload
    }

    /// Sequence space the segment occupies (RFC 9293 SEG.LEN: data plus SYN and FIN).
    var length: Int { payload.count + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0) }
}

/// A segment the connection wants sent. Its payload is `payloadLength` bytes of the send buffer
/// starting `payloadOffset` bytes after its head (the byte at SND.UNA); the owner copies them.
public struct TCPSegmentOut {
    public var seq: UInt32
    public var ack: UInt32
    public var flags: TCPFlags
    public var window: UInt16
    public var options: TCPOptions
    public var payloadOffset: Int
    public var payloadLength: Int
}
