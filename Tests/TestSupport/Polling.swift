// Waiting for a condition in integration tests: poll it until it holds or a deadline passes,
// rather than sleep a fixed time that is too long on a fast machine and too short on a slow one.
import Foundation

/// Polls `condition` every `interval` seconds until it holds or `seconds` pass; whether it held.
public func eventually(seconds: Double = 5, every interval: Double = 0.02, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(useconds_t(interval * 1_000_000))
    }
    return try condition()
}

/// Polls `condition` until it holds; throws `TestHost.TimedOut` if `seconds` pass first.
public func waitFor(seconds: Double = 30, every interval: Double = 0.02, _ condition: () throws -> Bool) throws {
    guard try eventually(seconds: seconds, every: interval, condition) else { throw TestHost.TimedOut() }
}
