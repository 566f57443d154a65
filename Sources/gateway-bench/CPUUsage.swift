// CPU time of the calling thread or of the whole process (getrusage), split into user and system.
#if canImport(Glibc)
import Glibc
#endif

struct CPUUsage: Sendable {
    var user: Double
    var system: Double
    var total: Double { user + system }

    /// The calling thread's CPU time (RUSAGE_THREAD): for the loop thread, that is the stack's
    /// work plus the kernel's work done in its read(2)/write(2) calls on the TAP.
    static func thread() -> CPUUsage { sample(rusageThread) }

    /// The whole process (RUSAGE_SELF): the loop thread plus the main thread's waiting.
    static func process() -> CPUUsage { sample(rusageSelf) }

    // <bits/resource.h> values; Glibc's module hides RUSAGE_THREAD (a _GNU_SOURCE name).
    private static let rusageSelf: Int32 = 0
    private static let rusageThread: Int32 = 1

    private static func sample(_ who: __rusage_who_t) -> CPUUsage {
        var ru = rusage()
        getrusage(who, &ru)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return CPUUsage(user: seconds(ru.ru_utime), system: seconds(ru.ru_stime))
    }

    static func - (a: CPUUsage, b: CPUUsage) -> CPUUsage { CPUUsage(user: a.user - b.user, system: a.system - b.system) }
}
