// Packet capture on a sandbox's link, for `gatewayctl capture`: every frame in both directions
// copied into a bounded ring while a capture runs, and nothing done at all while none does.
import Wire

extension Gateway {
    /// Starts copying the frames of sandbox `id` (both directions) into a new ring; stop it with
    /// `stopCapture(_:)`. Frames that arrive while the ring is full are counted and dropped.
    public func startCapture(
        sandbox id: String, capacity: Int = 4096, byteCapacity: Int = 16 << 20, snapLength: Int = 65_535
    ) throws(GatewayError) -> FrameCapture {
        guard let info = list().first(where: { $0.id == id }) else {
            throw GatewayError.unknownSandbox(id)
        }
        guard shards.indices.contains(info.shard), let mac = MACAddress(info.gatewayMAC) else {
            throw GatewayError(.system, "sandbox '\(id)' has no shard or gateway MAC to capture on")
        }
        let key = CaptureTaps.Key(loop: ObjectIdentifier(shards[info.shard]), gatewayMAC: mac.raw)
        let capture = FrameCapture(key: key, capacity: capacity, byteCapacity: byteCapacity, snapLength: snapLength)
        CaptureTaps.add(capture)
        return capture
    }

    /// Stops a capture; what it holds can still be drained.
    public func stopCapture(_ capture: FrameCapture) {
        CaptureTaps.remove(capture)
    }

    /// The shard count, for per-shard metrics.
    public var shardCount: Int { shards.count }
}
