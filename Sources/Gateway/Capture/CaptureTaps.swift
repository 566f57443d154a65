// Where a shard finds the captures running on its sandboxes. The data path reads one atomic per
// frame; only while some capture runs in the process does it look its own sandbox up here.
import Synchronization
import Wire

enum CaptureTaps {
    /// A sandbox as its driver knows itself: the shard it runs on and its gateway MAC, which the
    /// address plan makes unique within one Gateway (and each Gateway has loops of its own).
    struct Key: Hashable, Sendable {
        let loop: ObjectIdentifier
        let gatewayMAC: UInt64
    }

    private static let active = Atomic<Int>(0)
    private static let taps = Mutex<[Key: [FrameCapture]]>([:])

    /// True while any capture runs; the only cost the data path pays otherwise.
    @inline(__always)
    static var isActive: Bool { active.load(ordering: .relaxed) != 0 }

    static func add(_ capture: FrameCapture) {
        taps.withLock { $0[capture.key, default: []].append(capture) }
        active.add(1, ordering: .relaxed)
    }

    static func remove(_ capture: FrameCapture) {
        let removed = taps.withLock { t -> Bool in
            guard var list = t[capture.key], let i = list.firstIndex(where: { $0 === capture }) else { return false }
            list.remove(at: i)
            t[capture.key] = list.isEmpty ? nil : list
            return true
        }
        if removed { active.subtract(1, ordering: .relaxed) }
    }

    /// Copies a frame as the device sees it (virtio-net header first) into every capture of
    /// `driver`'s sandbox; `inbound` frames come from the guest. Called on the driver's loop thread.
    static func copy(_ driver: StackDriver, _ start: UnsafeMutableRawPointer?, _ length: Int, inbound: Bool) {
        let deviceFrame = UnsafeRawBufferPointer(start: start, count: start == nil ? 0 : length)
        let key = Key(loop: ObjectIdentifier(driver.loop), gatewayMAC: driver.stack.configuration.gatewayMAC.raw)
        guard let captures = taps.withLock({ $0[key] }) else { return }
        let header = driver.stack.configuration.vnetHeaderSize
        guard deviceFrame.count > header else { return }
        let frame = UnsafeRawBufferPointer(rebasing: deviceFrame[header...])
        let now = FrameCapture.now()
        for c in captures { c.record(frame, fromGuest: inbound, timestamp: now) }
    }
}
