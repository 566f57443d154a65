// Whether a shard's busy polling pays for itself: how often its recent quiet spells ended within
// the polling window, and the decision to poll after the next burst of I/O.

/// Polling after I/O buys latency with CPU: a spell that ends within the window saves a wake-up,
/// one that outlasts it burns the whole window for nothing. With chatty traffic (one sandbox's
/// request and its answer) nearly every spell ends within it; with many sandboxes that each
/// exchange a little now and then, most spells are the gap between unrelated exchanges, and
/// polling through each of them would cost a core for no gain. The governor keeps a moving
/// average of the share of spells that ended within the window and lets the loop poll only while
/// that share is at least `minimumHitPercent`. Spells the loop sleeps through are measured too,
/// so polling comes back as soon as the traffic turns chatty again.
struct SpinGovernor {
    /// The polling window (`busy-poll-us`); 0: never poll.
    let window: UInt64
    /// Share, in 1/1024, of spells that must end within the window for polling to go on.
    private let threshold: Int
    /// Moving average (weight 1/16) of spells that ended within the window, in 1/1024. Starts
    /// full: a new shard polls until its traffic says otherwise.
    private(set) var hitShare = 1024

    /// `minimumHitPercent`: 0 polls after every burst, whatever the spells (the window alone
    /// decides); 100 only while every recent spell ended within it.
    init(window: UInt64, minimumHitPercent: Int) {
        self.window = window
        threshold = min(max(minimumHitPercent, 0), 100) * 1024 / 100
    }

    /// Whether to poll after the burst of I/O just handled.
    var polls: Bool { window > 0 && hitShare >= threshold }

    /// The percentage of recent quiet spells that ended within the window.
    var hitPercent: Int { (hitShare * 100 + 512) / 1024 }

    /// A quiet spell (the loop found nothing, polling or asleep) ended with I/O `gap` nanoseconds
    /// after the previous I/O.
    mutating func spellEnded(after gap: UInt64) {
        let sample = gap <= window ? 1024 : 0
        hitShare += (sample - hitShare) / 16
        // Integer steps of (target - x) / 16 stop short of either end: a run restores it.
        if sample == 1024 && hitShare > 1024 - 16 { hitShare = 1024 }
        if sample == 0 && hitShare < 16 { hitShare = 0 }
    }
}
