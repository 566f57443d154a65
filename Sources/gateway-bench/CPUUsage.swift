// CPU time of the calling thread or of the whole process (getrusage), split into user and system.
#if canImport(Glibc)
import Glibc
#endif

struct CPUUsage: Sendable {
    /// User and system time as the kernel splits them: sampled at timer ticks, so the split of a
    /// busy thread can lean wholly one way in a short run. `total` is exact.
    var user: Double
    var system: Double
    /// CLOCK_THREAD_CPUTIME_ID / CLOCK_PROCESS_CPUTIME_ID: the scheduler's own runtime count.
    var total: Double

    /// The calling thread's CPU time (RUSAGE_THREAD): for the loop thread, that is the stack's
    /// work plus the kernel's work done in its read(2)/write(2) calls on the TAP.
    static func thread() -> CPUUsage { sample(rusageThread, clock: CLOCK_THREAD_CPUTIME_ID) }

    /// The whole process (RUSAGE_SELF): the loop thread plus the main thread's waiting.
    static func process() -> CPUUsage { sample(rusageSelf, clock: CLOCK_PROCESS_CPUTIME_ID) }

    // <bits/resource.h> values; Glibc's module hides RUSAGE_THREAD (a _GNU_SOURCE name).
    private static let rusageSelf: Int32 = 0
    private static let rusageThread: Int32 = 1

    private static func sample(_ who: __rusage_who_t, clock: clockid_t) -> CPUUsage {
        var ru = rusage()
        getrusage(who, &ru)
        var ts = timespec()
        clock_gettime(clock, &ts)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return CPUUsage(
            user: seconds(ru.ru_utime), system: seconds(ru.ru_stime),
            total: Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9)
    }

    static func - (a: CPUUsage, b: CPUUsage) -> CPUUsage {
        CPUUsage(user: a.user - b.user, system: a.system - b.system, total: a.total - b.total)
    }
}

/// Seconds the calling thread spent runnable but waiting for a CPU (/proc/thread-self/schedstat,
/// second field, ns). On a shared machine this is the share of a run lost to other work; zero
/// when the kernel has no schedstats.
func threadRunQueueWait() -> Double {
    let fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 128)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard n > 0 else { return 0 }
    let fields = buffer[..<n].split(separator: UInt8(ascii: " "))
    guard fields.count >= 2, let waited = UInt64(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
    return Double(waited) / 1e9
}

