// Helpers for the link integration tests: writing and reading frames on a TAP in tests.
import Foundation
import GatewayTestSupport
import Testing
import Wire

@testable import Link

extension TAPDevice {
    /// Writes `frame` behind a zeroed virtio-net header (no offload requested: flags 0, GSO none).
    func send(_ frame: [UInt8]) throws {
        let bytes = [UInt8](repeating: 0, count: vnetHeaderSize) + frame
        let written = try bytes.withUnsafeBytes { try write($0) }
        #expect(written == bytes.count)
    }

    /// Reads frames until `match` accepts one (returned without its virtio-net header), or
    /// `seconds` pass. Every other frame goes to `other` (which may answer it) and is dropped.
    func receive(
        within seconds: Double = 5, other: ([UInt8]) throws -> Void = { _ in },
        where match: ([UInt8]) -> Bool
    ) throws -> [UInt8]? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var buffer = [UInt8](repeating: 0, count: frameBufferSize)
        while ContinuousClock.now < deadline {
            let left = deadline - ContinuousClock.now
            let ms = Int32(max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            guard try waitUntilReadable(timeoutMilliseconds: ms) else { continue }
            while let n = try buffer.withUnsafeMutableBytes({ try read(into: $0) }) {
                guard n >= vnetHeaderSize else { continue }
                let frame = Array(buffer[vnetHeaderSize..<n])
                if match(frame) { return frame }
                try other(frame)
            }
        }
        return nil
    }
}
