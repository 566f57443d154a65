// The stack's side of fault injection: output frames pass the injector before the device sees
// them (input frames pass it at the top of `receive`).
import Wire

extension Stack {
    /// Applies the fault injector, if any, to the frames queued since the last call. The owner
    /// calls it (or `drainOutput`) before writing `output` to the device; `poll` calls it too.
    public func flushOutput(now: UInt64) {
        faults?.process(&output, now: now)
    }

    /// `flushOutput`, then hands every queued frame to `body` and recycles it.
    public func drainOutput(now: UInt64, _ body: (FrameBuffer) -> Void) {
        flushDeferredTCP(now: now)
        faults?.process(&output, now: now)
        output.drain(body)
    }

    /// Starts injecting faults as `configuration` says (or stops, with nil), replacing any
    /// injector and releasing nothing it held.
    public func injectFaults(_ configuration: FaultConfiguration?) {
        faults = configuration.map { FaultInjector(configuration: $0, vnetHeaderSize: self.configuration.vnetHeaderSize) }
    }
}
