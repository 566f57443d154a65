// The one error the confinement steps throw: which step failed, and the kernel's errno when it gave one.
// A struct with a code (not an enum) so that adding a step breaks no caller.
#if canImport(Glibc)
    import Glibc
#endif

public struct ConfinementError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Step: Hashable, Sendable, CustomStringConvertible {
        let raw: UInt8
        let name: StaticString
        public var description: String { "\(name)" }
        public static func == (a: Step, b: Step) -> Bool { a.raw == b.raw }
        public func hash(into h: inout Hasher) { h.combine(raw) }

        /// The process already runs more than one thread; per-thread state (the bounding set)
        /// would stay on the others.
        public static let threadsRunning = Step(raw: 1, name: "check single thread")
        /// The user name or uid has no passwd entry.
        public static let resolveUser = Step(raw: 2, name: "resolve user")
        /// setgroups(2) to the user's primary group alone.
        public static let setGroups = Step(raw: 3, name: "setgroups")
        /// Reading /proc/sys/kernel/cap_last_cap.
        public static let readLastCapability = Step(raw: 4, name: "read cap_last_cap")
        /// prctl(PR_CAPBSET_DROP) for one capability.
        public static let dropBoundingSet = Step(raw: 5, name: "drop capability bounding set")
        /// prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL).
        public static let clearAmbient = Step(raw: 6, name: "clear ambient capabilities")
        /// setresgid(2).
        public static let setGID = Step(raw: 7, name: "setresgid")
        /// setresuid(2).
        public static let setUID = Step(raw: 8, name: "setresuid")
        /// prctl(PR_SET_NO_NEW_PRIVS, 1).
        public static let noNewPrivileges = Step(raw: 9, name: "set no_new_privs")
        /// /proc/self/status after the drop still shows a capability, a uid or no_new_privs unset.
        public static let verify = Step(raw: 10, name: "verify /proc/self/status")
        /// libseccomp refused a filter attribute or rule (the system call name is in the message).
        public static let buildFilter = Step(raw: 11, name: "build seccomp filter")
        /// seccomp_load: the kernel refused the filter, or TSYNC found a thread it could not move.
        public static let installFilter = Step(raw: 12, name: "install seccomp filter")
        /// Opening or reading the kernel log (/dev/kmsg).
        public static let readKernelLog = Step(raw: 13, name: "read kernel log")
        /// prctl(PR_SET_PDEATHSIG) after the uid change, or the parent was already gone.
        public static let parentDeathSignal = Step(raw: 14, name: "set parent death signal")
    }

    public let step: Step
    /// The positive errno the failing call gave, 0 when the failure was not a system call's.
    public let errno: Int32
    /// What was being done, with the names involved (the user, the capability, the system call).
    public let detail: String

    public init(_ step: Step, errno: Int32 = 0, _ detail: String) {
        self.step = step
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        let cause = errno == 0 ? "" : ": \(String(cString: strerror(errno)))"
        return "\(step) failed: \(detail)\(cause)"
    }
}
