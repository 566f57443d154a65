// Whether a TCP segment's or UDP datagram's checksum is right for its IP addresses, whichever the
// family: one place for the stack's receive path and for checks of what it sends.

public enum TransportChecksum {
    /// False also when the two addresses are of different families.
    public static func verifies(tcp: Bool, _ l4: UnsafeRawBufferPointer, source: IPAddress, destination: IPAddress) -> Bool {
        switch (source, destination) {
        case (.v4(let s), .v4(let d)):
            tcp ? TCPHeader.verifyChecksum(l4, source: s, destination: d) : UDPHeader.verifyChecksum(l4, source: s, destination: d)
        case (.v6(let s), .v6(let d)):
            tcp ? TCPHeader.verifyChecksum(l4, source: s, destination: d) : UDPHeader.verifyChecksum(l4, source: s, destination: d)
        default:
            false
        }
    }
}
