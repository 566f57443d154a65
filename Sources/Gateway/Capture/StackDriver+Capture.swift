// Where a sandbox's frames reach its captures: on its shard's thread, from the driver that reads
// and writes its device, so the data path looks up nothing and takes no shared lock.

extension StackDriver {
    /// Copies a frame as the device sees it (virtio-net header first) into every capture of this
    /// sandbox; `fromGuest` frames were read from the device. Only called while `captures` is not
    /// empty.
    func copyToCaptures(_ start: UnsafeRawPointer?, _ length: Int, fromGuest: Bool) {
        let header = stack.configuration.vnetHeaderSize
        guard let start, length > header else { return }
        let frame = UnsafeRawBufferPointer(start: start + header, count: length - header)
        let now = FrameCapture.now()
        for c in captures { c.record(frame, fromGuest: fromGuest, timestamp: now) }
    }
}
