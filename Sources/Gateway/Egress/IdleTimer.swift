// Ends a relay session after a quiet spell: one timer per session, re-armed lazily from the
// last activity instead of on every packet.
import NetStack

final class IdleTimer {
    private let loop: EventLoop
    private let timeout: UInt64
    private var timer: EventLoop.TimerID?
    /// Set by the session on traffic; the timer only reads it when it fires.
    var lastActivity = monotonicNanoseconds()

    init(loop: EventLoop, timeout: Duration, expired: @escaping () -> Void) {
        self.loop = loop
        self.timeout = timeout.nanoseconds
        arm(expired)
    }

    private func arm(_ expired: @escaping () -> Void) {
        timer = loop.schedule(at: lastActivity + timeout) { [weak self] in
            guard let self else { return }
            self.timer = nil
            if monotonicNanoseconds() >= self.lastActivity + self.timeout { expired() } else { self.arm(expired) }
        }
    }

    func cancel() {
        if let timer { loop.cancel(timer) }
        timer = nil
    }
}
