// The classic pcap file format (tcpdump's, draft-ietf-opsawg-pcap §4-5): a global header, then a
// record header and the bytes of each frame. Microsecond timestamps, link type 1 (Ethernet).
import Gateway

public enum PcapWriter {
    /// LINKTYPE_ETHERNET.
    public static let ethernet: UInt32 = 1
    /// Written in our byte order; readers detect the order from it.
    static let magic: UInt32 = 0xA1B2_C3D4

    /// The 24-byte file header.
    public static func fileHeader(snapLength: Int = 65_535, linkType: UInt32 = ethernet) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(24)
        append32(magic, to: &out)
        append16(2, to: &out)  // version 2.4
        append16(4, to: &out)
        append32(0, to: &out)  // reserved (was thiszone)
        append32(0, to: &out)  // reserved (was sigfigs)
        append32(UInt32(clamping: snapLength), to: &out)
        append32(linkType, to: &out)
        return out
    }

    /// One record: a 16-byte header (seconds, microseconds, captured and original length) and
    /// the captured bytes.
    public static func record(timestamp nanoseconds: UInt64, bytes: [UInt8], originalLength: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16 + bytes.count)
        append32(UInt32(truncatingIfNeeded: nanoseconds / 1_000_000_000), to: &out)
        append32(UInt32(nanoseconds % 1_000_000_000 / 1000), to: &out)
        append32(UInt32(clamping: bytes.count), to: &out)
        append32(UInt32(clamping: max(originalLength, bytes.count)), to: &out)
        out.append(contentsOf: bytes)
        return out
    }

    public static func record(_ frame: FrameCapture.Frame) -> [UInt8] {
        record(timestamp: frame.timestamp, bytes: frame.bytes, originalLength: frame.originalLength)
    }

    private static func append32(_ v: UInt32, to out: inout [UInt8]) {
        withUnsafeBytes(of: v) { out.append(contentsOf: $0) }
    }

    private static func append16(_ v: UInt16, to out: inout [UInt8]) {
        withUnsafeBytes(of: v) { out.append(contentsOf: $0) }
    }
}
