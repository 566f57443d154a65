// Moving frames through a TAP fd: one at a time or many per wake-up, never blocking. Each frame
// carries the virtio-net header in front, as the device was opened with IFF_VNET_HDR.

import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension TAPDevice {
    /// A buffer this large holds any frame the device can hand over: the virtio-net header, an
    /// Ethernet header with one VLAN tag, and a 64 KiB TSO segment (IPv4 total length is 16 bits).
    public var frameBufferSize: Int { vnetHeaderSize + 14 + 4 + 65_535 }

    /// Reads one frame, virtio-net header first, into `buffer`.
    /// - Returns: the byte count, or nil when no frame is waiting (EAGAIN).
    /// - Throws: `.noSuchDevice` once the device is deleted under the fd (EBADFD); other errno.
    ///   A buffer smaller than the frame gets the frame cut short, as tun(4) does.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(LinkError) -> Int? {
        while true {
            let n = Glibc.read(fileDescriptor, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            switch Errno.last {
            case .interrupted: continue
            case .resourceTemporarilyUnavailable: return nil
            case let e: throw LinkError(e, operation: "read frame", subject: name)
            }
        }
    }

    /// Writes one frame, virtio-net header first; the kernel takes all of it or none.
    /// - Returns: the byte count, or nil when the device cannot take it now (EAGAIN).
    /// - Throws: `.invalidArgument` when the kernel rejects the header (bad GSO fields, say).
    @discardableResult
    public func write(_ frame: UnsafeRawBufferPointer) throws(LinkError) -> Int? {
        while true {
            let n = Glibc.write(fileDescriptor, frame.baseAddress, frame.count)
            if n >= 0 { return n }
            switch Errno.last {
            case .interrupted: continue
            case .resourceTemporarilyUnavailable: return nil
            case let e: throw LinkError(e, operation: "write frame", subject: name)
            }
        }
    }

    /// Reads up to `buffers.count` frames, one per buffer, stopping early when none is left.
    /// `lengths[i]` receives the size of the frame in `buffers[i]`.
    /// - Returns: how many frames were read (0 when none was waiting).
    /// - Throws: only when the very first read fails; an error after some frames were read ends
    ///   the batch quietly and comes back on the next call, so no frame is lost with it.
    public func readFrames(
        into buffers: UnsafeBufferPointer<UnsafeMutableRawBufferPointer>,
        lengths: UnsafeMutableBufferPointer<Int>
    ) throws(LinkError) -> Int {
        let limit = min(buffers.count, lengths.count)
        var count = 0
        while count < limit {
            let got: Int?
            do {
                got = try read(into: buffers[count])
            } catch {
                if count == 0 { throw error }
                break
            }
            guard let got else { break }
            lengths[count] = got
            count += 1
        }
        return count
    }

    /// As ``readFrames(into:lengths:)`` over one arena cut into equal slots: frame `i` lands at
    /// offset `i * slotSize`. Reads at most `min(arena.count / slotSize, lengths.count)` frames.
    public func readFrames(
        into arena: UnsafeMutableRawBufferPointer,
        slotSize: Int,
        lengths: UnsafeMutableBufferPointer<Int>
    ) throws(LinkError) -> Int {
        guard slotSize > 0 else {
            throw LinkError(
                .invalidArgument, operation: "read frames", subject: name, reason: "slot size must be positive")
        }
        let limit = min(arena.count / slotSize, lengths.count)
        var count = 0
        while count < limit {
            let slot = UnsafeMutableRawBufferPointer(rebasing: arena[(count * slotSize)..<((count + 1) * slotSize)])
            let got: Int?
            do {
                got = try read(into: slot)
            } catch {
                if count == 0 { throw error }
                break
            }
            guard let got else { break }
            lengths[count] = got
            count += 1
        }
        return count
    }

    /// Waits up to `timeoutMilliseconds` (negative: forever) for a frame to read. For tests and
    /// simple tools; a shard waits on its event loop instead.
    /// - Returns: true when a frame is waiting.
    public func waitUntilReadable(timeoutMilliseconds: Int32) throws(LinkError) -> Bool {
        var entry = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        while true {
            let n = poll(&entry, 1, timeoutMilliseconds)
            if n > 0 {
                if entry.revents & Int16(POLLIN) != 0 { return true }
                throw LinkError(
                    .noSuchDevice, operation: "wait for frames", subject: name, reason: "the TAP fd reports an error")
            }
            if n == 0 { return false }
            let e = Errno.last
            if e == .interrupted { continue }
            throw LinkError(e, operation: "wait for frames", subject: name)
        }
    }
}
