// The timers of one TCP connection as absolute deadlines, and the earliest of them, which the
// stack keeps in its deadline heap and reads after every segment.

struct TCPTimers {
    enum Timer: Int, CaseIterable {
        /// RFC 6298: outstanding data drew no ACK within the RTO.
        case retransmit
        /// RFC 9293 §3.8.6.3: an ACK held back in the hope of a second segment to acknowledge.
        case delayedACK
        /// RFC 9293 §3.8.6.1: the guest's window is zero and a probe is due.
        case persist
        /// RFC 8985 §7: a tail loss probe before the RTO.
        case tailLossProbe
        /// RFC 9293 §3.10.8: TIME-WAIT's end.
        case timeWait
    }

    /// Indexed by `Timer.rawValue`; `UInt64.max` when the timer is off, so the earliest deadline
    /// is a plain minimum.
    private var deadlines = InlineArray<5, UInt64>(repeating: .max)

    /// Retransmission timeouts in a row with no new data acknowledged; past a limit the
    /// connection gives up.
    var retransmissions = 0
    /// Zero-window probes sent since the window was last open; each doubles the next interval.
    var persistProbes = 0

    /// The deadline of `timer`, or nil when it is off; setting nil turns it off.
    subscript(timer: Timer) -> UInt64? {
        get {
            let deadline = deadlines[timer.rawValue]
            return deadline == .max ? nil : deadline
        }
        set { deadlines[timer.rawValue] = newValue ?? .max }
    }

    func isDue(_ timer: Timer, now: UInt64) -> Bool { now >= deadlines[timer.rawValue] }

    /// The earliest deadline of any timer that is on.
    var next: UInt64? {
        var earliest = deadlines[0]
        for i in 1..<deadlines.count where deadlines[i] < earliest { earliest = deadlines[i] }
        return earliest == .max ? nil : earliest
    }
}
