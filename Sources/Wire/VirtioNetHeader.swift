// The virtio-net header (virtio 1.x §5.1.6) that a TAP opened with IFF_VNET_HDR puts before
// every frame: how to finish a partial checksum and how to cut a large segment (TSO/USO).

/// `struct virtio_net_hdr`: the 10-byte legacy layout, or 12 bytes with `num_buffers`
/// (the v1 / mergeable-buffers layout, set on a TAP with TUNSETVNETHDRSZ). Fields are
/// little-endian: virtio 1.x says so, and on a little-endian host a legacy TAP agrees.
public struct VirtioNetHeader: Hashable, Sendable {
    public struct Flags: OptionSet, Hashable, Sendable {
        public var rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        /// The checksum from `checksumStart` to the end is still to be computed and stored at
        /// `checksumStart + checksumOffset`; the field holds the pseudo-header sum.
        public static let needsChecksum = Flags(rawValue: 1)
        /// The sender has validated the checksums (device to driver only).
        public static let dataValid = Flags(rawValue: 2)
        /// The checksum fields carry coalescing counts instead (VIRTIO_NET_F_RSC_EXT).
        public static let rscInfo = Flags(rawValue: 4)
    }

    /// How the frame is to be segmented; the ECN bit (0x80) is `gsoECN`.
    public enum GSOType: UInt8, Sendable {
        case none = 0
        case tcpv4 = 1
        /// UDP fragmentation offload (UFO), IPv4 or IPv6.
        case udp = 3
        case tcpv6 = 4
        /// UDP segmentation offload (USO, VIRTIO_NET_F_HOST_USO).
        case udpL4 = 5
    }

    public var flags: Flags
    public var gsoType: GSOType
    /// The segments need CWR set on the first (the guest's TCP used ECN).
    public var gsoECN: Bool
    /// hdr_len: the length of the headers (Ethernet to transport) to copy onto each segment.
    /// Linux fills it from the length of its linear head (the headers exactly, in the TSO frames
    /// seen from a TAP) and reads it only as a hint; treat it as one.
    public var headerLength: UInt16
    /// The payload size of each segment (the MSS for TCP).
    public var gsoSize: UInt16
    /// Offset in the frame (from the Ethernet header) where checksumming starts.
    public var checksumStart: UInt16
    /// Where, counted from `checksumStart`, the checksum field lies (16 for TCP, 6 for UDP).
    public var checksumOffset: UInt16
    /// Receive buffers a frame spans; only in the 12-byte layout, and 0 otherwise.
    public var numBuffers: UInt16

    public static let legacySize = 10
    public static let v1Size = 12

    static let ecnBit: UInt8 = 0x80

    /// All zero: a plain frame with complete checksums and nothing to segment.
    public init() {
        flags = []
        gsoType = .none
        gsoECN = false
        headerLength = 0
        gsoSize = 0
        checksumStart = 0
        checksumOffset = 0
        numBuffers = 0
    }

    /// Reads a header of `size` bytes (10 or 12) from the start of `bytes`. Throws `.unsupported`
    /// for another size or an unknown GSO type, `.truncated` when fewer than `size` bytes.
    /// Unknown flag bits are kept as they are.
    public static func parse(_ bytes: UnsafeRawBufferPointer, size: Int) throws(WireError) -> VirtioNetHeader {
        let r = CheckedReader(bytes, layer: "virtio-net")
        guard size == legacySize || size == v1Size else { throw WireError(.unsupported, "virtio-net") }
        guard bytes.count >= size else { throw WireError(.truncated, "virtio-net") }
        let rawGSO = try r.u8(1)
        guard let gsoType = GSOType(rawValue: rawGSO & ~ecnBit) else { throw WireError(.unsupported, "virtio-net") }
        var header = VirtioNetHeader()
        header.flags = Flags(rawValue: try r.u8(0))
        header.gsoType = gsoType
        header.gsoECN = rawGSO & ecnBit != 0
        header.headerLength = try r.le16(2)
        header.gsoSize = try r.le16(4)
        header.checksumStart = try r.le16(6)
        header.checksumOffset = try r.le16(8)
        if size == v1Size { header.numBuffers = try r.le16(10) }
        return header
    }

    /// Writes `size` bytes (10 or 12); `numBuffers` goes out only in the 12-byte layout.
    public func emit(into buffer: UnsafeMutableRawBufferPointer, size: Int) throws(WireError) -> Int {
        guard size == VirtioNetHeader.legacySize || size == VirtioNetHeader.v1Size else {
            throw WireError(.unsupported, "virtio-net")
        }
        guard buffer.count >= size else { throw WireError(.noSpace, "virtio-net") }
        buffer.setU8(flags.rawValue, 0)
        buffer.setU8(gsoType.rawValue | (gsoECN ? VirtioNetHeader.ecnBit : 0), 1)
        buffer.setLE16(headerLength, 2)
        buffer.setLE16(gsoSize, 4)
        buffer.setLE16(checksumStart, 6)
        buffer.setLE16(checksumOffset, 8)
        if size == VirtioNetHeader.v1Size { buffer.setLE16(numBuffers, 10) }
        return size
    }

    /// Checks the header against the frame it came with, as a device must before acting on it:
    /// a GSO frame needs a segment size (`.malformed`), and a NEEDS_CSUM checksum field must lie
    /// inside the frame (`.badLength`). `frameLength` counts from the Ethernet header.
    public func validate(frameLength: Int) throws(WireError) {
        if gsoType != .none && gsoSize == 0 { throw WireError(.malformed, "virtio-net") }
        if flags.contains(.needsChecksum) && !flags.contains(.rscInfo) {
            guard Int(checksumStart) + Int(checksumOffset) + 2 <= frameLength else {
                throw WireError(.badLength, "virtio-net")
            }
        }
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    fileprivate func setLE16(_ v: UInt16, _ offset: Int) {
        storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt16.self)
    }
}
