// Packet capture on a sandbox's link, for `gatewayctl capture`: every frame in both directions
// copied into a bounded ring while a capture runs, and nothing done at all while none does.

extension Gateway {
    /// Starts copying the frames of sandbox `id` (both directions) into a new ring; stop it with
    /// `stopCapture(_:)`. Frames that arrive while the ring is full are counted and dropped. The
    /// ring joins the sandbox's driver on its shard, which fills it with no lock but the ring's.
    public func startCapture(
        sandbox id: String, capacity: Int = 4096, byteCapacity: Int = 16 << 20, snapLength: Int = 65_535
    ) throws(GatewayError) -> FrameCapture {
        guard let (shard, box) = attachedSandbox(id) else {
            throw GatewayError.unknownSandbox(id)
        }
        let capture = FrameCapture(sandbox: id, capacity: capacity, byteCapacity: byteCapacity, snapLength: snapLength)
        try shards[shard].submitAndWaitTyped { () throws(GatewayError) in box.value.driver.captures.append(capture) }
        return capture
    }

    /// Stops a capture: once this returns its sandbox's shard copies nothing more into it; what
    /// it holds can still be drained. A capture whose sandbox has gone has stopped already.
    public func stopCapture(_ capture: FrameCapture) {
        guard let (shard, box) = attachedSandbox(capture.sandbox) else { return }
        try? shards[shard].submitAndWaitTyped { () throws(GatewayError) in
            box.value.driver.captures.removeAll { $0 === capture }
        }
    }

    /// The shard count, for per-shard metrics.
    public var shardCount: Int { shards.count }
}
