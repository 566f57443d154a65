// The checked view every parser reads received bytes through: a read that does not fit is a
// WireError naming the reader's layer, at any offset, including ones chosen to overflow a sum.
import Testing

@testable import Wire

@Suite struct CheckedReaderTests {
    typealias F = L3Frames

    static let eight: [UInt8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]

    /// The layer a failed read names, or nil when it succeeded.
    static func failure(_ body: () throws(WireError) -> Void) -> WireError? {
        do throws(WireError) {
            try body()
            return nil
        } catch {
            return error
        }
    }

    @Test func readsInsideTheViewReturnBigEndianValues() throws {
        try F.withExactBuffer(Self.eight) { b throws in
            let r = CheckedReader(b, layer: "test")
            #expect(try r.u8(7) == 0x08)
            #expect(try r.be16(6) == 0x0708)
            #expect(try r.le16(0) == 0x0201)
            #expect(try r.be32(4) == 0x0506_0708)
            #expect(try r.be64(0) == 0x0102_0304_0506_0708)
            #expect(try r.mac(2) == MACAddress(0x03, 0x04, 0x05, 0x06, 0x07, 0x08))
            #expect(try r.ipv4(4) == IPv4Address(5, 6, 7, 8))
            #expect(try Array(r.bytes(2, 6)) == [3, 4, 5, 6, 7, 8])
            #expect(try r.bytes(8, 0).isEmpty, "an empty range at the end is inside")
        }
    }

    /// Each width read one byte too far, at a negative offset, and at offsets where
    /// `offset + width` would overflow an Int.
    @Test(arguments: [-1, 1, Int.max, Int.max - 1, Int.min])
    func readsOutsideTheViewThrowTruncated(_ shift: Int) {
        F.withExactBuffer(Self.eight) { b in
            let r = CheckedReader(b, layer: "test")
            func offset(_ width: Int) -> Int { shift == 1 ? 8 - width + 1 : shift }
            let reads: [(String, () throws(WireError) -> Void)] = [
                ("u8", { () throws(WireError) in _ = try r.u8(offset(1)) }),
                ("be16", { () throws(WireError) in _ = try r.be16(offset(2)) }),
                ("le16", { () throws(WireError) in _ = try r.le16(offset(2)) }),
                ("be32", { () throws(WireError) in _ = try r.be32(offset(4)) }),
                ("be64", { () throws(WireError) in _ = try r.be64(offset(8)) }),
                ("mac", { () throws(WireError) in _ = try r.mac(offset(6)) }),
                ("ipv4", { () throws(WireError) in _ = try r.ipv4(offset(4)) }),
                ("ipv6", { () throws(WireError) in _ = try r.ipv6(shift == 1 ? 0 : shift) }),
                ("bytes", { () throws(WireError) in _ = try r.bytes(offset(3), 3) }),
                ("reader", { () throws(WireError) in _ = try r.reader(offset(3), 3) }),
            ]
            for (name, read) in reads {
                let error = Self.failure(read)
                #expect(error == WireError(.truncated, "test"), "\(name) at shift \(shift)")
            }
        }
    }

    @Test func negativeAndOverflowingCountsThrow() {
        F.withExactBuffer(Self.eight) { b in
            let r = CheckedReader(b, layer: "test")
            #expect(Self.failure { () throws(WireError) in _ = try r.bytes(0, -1) } != nil)
            #expect(Self.failure { () throws(WireError) in _ = try r.bytes(1, Int.max) } != nil)
            #expect(Self.failure { () throws(WireError) in _ = try r.bytes(Int.max, Int.max) } != nil)
            #expect(b.checkedSlice(4, 5) == nil)
            #expect(b.checkedSlice(-1, 2) == nil)
            #expect(b.checkedSlice(4, 4).map(Array.init) == [5, 6, 7, 8])
        }
    }

    @Test func aSubViewCannotReadPastItsOwnEnd() throws {
        try F.withExactBuffer(Self.eight) { b throws in
            let r = CheckedReader(b, layer: "outer")
            let inner = try r.reader(2, 4, layer: "inner")
            #expect(try inner.u8(3) == 6)
            // Byte 7 of the outer view exists, but lies past the inner one.
            #expect(Self.failure { () throws(WireError) in _ = try inner.u8(4) } == WireError(.truncated, "inner"))
            #expect(Self.failure { () throws(WireError) in _ = try inner.be32(1) } == WireError(.truncated, "inner"))
        }
    }

    @Test func cursorReadsAdvanceAndStopAtTheEnd() throws {
        try F.withExactBuffer(Self.eight) { b throws in
            var r = CheckedReader(b, layer: "test")
            #expect(try r.readU8() == 1)
            #expect(try r.readBE16() == 0x0203)
            #expect(try r.readBE32() == 0x0405_0607)
            #expect(r.remaining == 1)
            let before = r.position
            #expect(Self.failure { () throws(WireError) in _ = try r.readBE16() } == WireError(.truncated, "test"))
            #expect(r.position == before, "a failed read does not move the cursor")
            try r.seek(to: 8)
            #expect(Self.failure { () throws(WireError) in try r.seek(to: 9) } != nil)
            #expect(Self.failure { () throws(WireError) in try r.skip(1) } != nil)
        }
    }

    /// A vector whose length prefix claims more than is left fails instead of skipping past.
    @Test func skipVectorChecksItsLength() throws {
        try F.withExactBuffer([0x00, 0x03, 0xAA, 0xBB, 0xCC, 0x05, 0x00]) { b throws in
            var r = CheckedReader(b, layer: "test")
            try r.skipVector(lengthBytes: 2)
            #expect(r.position == 5)
            #expect(Self.failure { () throws(WireError) in try r.skipVector(lengthBytes: 1) } != nil)
        }
    }
}
