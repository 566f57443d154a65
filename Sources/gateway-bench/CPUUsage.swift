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
