// A seccomp allow-list installed with libseccomp: every system call not on the list kills the
// whole process (SECCOMP_RET_KILL_PROCESS), on every thread (TSYNC).
import CSeccomp

#if canImport(Glibc)
    import Glibc
#endif

public struct SyscallFilter: Sendable {
    /// One allowed system call, why the worker makes it, and the condition (if any) it is allowed under.
    public struct Rule: Sendable {
        public var name: String
        public var group: Group
        public var reason: String
        public var condition: Condition

        public init(_ name: String, _ group: Group, _ reason: String, _ condition: Condition = .always) {
            self.name = name
            self.group = group
            self.reason = reason
            self.condition = condition
        }
    }

    /// What a system call is for, for the tables in the docs.
    public enum Group: String, Sendable, CaseIterable {
        case memory
        case threads
        case events = "events (epoll, eventfd, timerfd)"
        case sockets
        case files = "files (state directory, config, logs, TAP descriptors)"
        case time
        case signals
        case process
    }

    /// When an allowed system call is allowed. Each restriction says why it is there.
    public enum Condition: Sendable {
        /// Always allowed.
        case always
        /// Allowed when argument `index` (from 0) equals one of `values`; killed otherwise.
        case argument(Int, oneOf: [UInt64], why: String)
        /// Allowed when every argument of one of the `alternatives` equals its value.
        case anyOf(_ alternatives: [[ArgumentValue]], why: String)
        /// Allowed when argument `index` has none of the bits in `mask` set.
        case argumentWithout(Int, mask: UInt64, why: String)
        /// Allowed when argument `index` is the process's own pid (taken when the filter is installed).
        case ownProcess(Int, why: String)
        /// Not executed: fails with `errno`, so that the caller takes its fallback.
        case fails(errno: Int32, why: String)

        public var why: String? {
            switch self {
            case .always: nil
            case .argument(_, _, let why), .anyOf(_, let why), .argumentWithout(_, _, let why),
                .ownProcess(_, let why), .fails(_, let why):
                why
            }
        }
    }

    /// Argument `index` (from 0) of a system call, equal to `value`.
    public struct ArgumentValue: Sendable, Equatable {
        public var index: Int
        public var value: UInt64

        public init(_ index: Int, _ value: UInt64) {
            self.index = index
            self.value = value
        }
    }

    public var rules: [Rule]

    /// A filter of these rules; by default the worker's (``workerRules``).
    public init(rules: [Rule] = SyscallFilter.workerRules) {
        self.rules = rules
    }

    /// The system calls the filter lets through (in table order; a name with several conditions once).
    public var names: [String] {
        var seen: Set<String> = []
        return rules.compactMap { rule in
            if case .fails = rule.condition { return nil }
            return seen.insert(rule.name).inserted ? rule.name : nil
        }
    }

    /// How many system calls it lets through.
    public var count: Int { names.count }

    /// Installs the filter on every thread of the calling process (seccomp_load with TSYNC), after
    /// which it cannot be removed. libseccomp sets no_new_privs first, as the kernel requires of an
    /// unprivileged process.
    ///
    /// - Throws: ``ConfinementError`` at `buildFilter` (a name libseccomp does not know on this
    ///   architecture, a rejected rule) or `installFilter` (the kernel refused it).
    public func install() throws(ConfinementError) {
        let context = try FilterContext(rules: rules)
        let rc = seccomp_load(context.raw)
        guard rc == 0 else {
            throw ConfinementError(.installFilter, errno: -rc, "seccomp_load of \(count) allowed system calls")
        }
    }

    /// Writes the filter as classic BPF to `descriptor` (seccomp_export_bpf) without installing it,
    /// so a test or a tool can check that every rule builds.
    public func exportBPF(to descriptor: Int32) throws(ConfinementError) {
        let context = try FilterContext(rules: rules)
        let rc = seccomp_export_bpf(context.raw, descriptor)
        guard rc == 0 else { throw ConfinementError(.buildFilter, errno: -rc, "seccomp_export_bpf") }
    }

    /// The system call number of `name` on this architecture, or nil when libseccomp does not know
    /// it or it does not exist here (libseccomp gives such names negative pseudo-numbers).
    public static func number(of name: String) -> Int32? {
        let nr = seccomp_syscall_resolve_name(name)
        return nr >= 0 ? nr : nil
    }

    /// The name of system call `number` on `architecture` (an AUDIT_ARCH value, as the kernel's audit
    /// record gives it; 0 means this process's own).
    public static func name(of number: Int32, architecture: UInt32 = 0) -> String? {
        guard let cName = seccomp_syscall_resolve_num_arch(architecture, number) else { return nil }
        defer { free(cName) }
        return String(cString: cName)
    }
}

/// A libseccomp filter context with the rules added; released when it goes.
private final class FilterContext {
    let raw: scmp_filter_ctx

    init(rules: [SyscallFilter.Rule]) throws(ConfinementError) {
        guard let raw = seccomp_init(SCMP_ACT_KILL_PROCESS) else {
            throw ConfinementError(.buildFilter, "seccomp_init")
        }
        self.raw = raw
        // A system call made through another ABI (i386's int 0x80, x32) would bypass the numbers
        // below; it kills the process like any other stranger.
        try attribute(SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS, "SCMP_FLTATR_ACT_BADARCH")
        // One filter for every thread, including those the runtime started before this call.
        try attribute(SCMP_FLTATR_CTL_TSYNC, 1, "SCMP_FLTATR_CTL_TSYNC")
        // Every system call of the data path runs the filter: a binary search over the numbers
        // (about 7 comparisons) rather than a walk down the list.
        try attribute(SCMP_FLTATR_CTL_OPTIMIZE, 2, "SCMP_FLTATR_CTL_OPTIMIZE")
        let pid = UInt64(getpid())
        for rule in rules {
            guard let nr = SyscallFilter.number(of: rule.name) else {
                throw ConfinementError(.buildFilter, "no system call \"\(rule.name)\" on this architecture")
            }
            var rc: Int32
            switch rule.condition {
            case .always:
                rc = seccomp_rule_add_array(raw, SCMP_ACT_ALLOW, nr, 0, nil)
            case .argument(let index, let values, _):
                rc = 0
                // One rule per value: libseccomp allows a call when any of its rules matches.
                for value in values where rc == 0 {
                    var compare = scmp_arg_cmp(arg: UInt32(index), op: SCMP_CMP_EQ, datum_a: value, datum_b: 0)
                    rc = seccomp_rule_add_array(raw, SCMP_ACT_ALLOW, nr, 1, &compare)
                }
            case .anyOf(let alternatives, _):
                rc = 0
                for alternative in alternatives where rc == 0 {
                    var compares = alternative.map {
                        scmp_arg_cmp(arg: UInt32($0.index), op: SCMP_CMP_EQ, datum_a: $0.value, datum_b: 0)
                    }
                    rc = seccomp_rule_add_array(raw, SCMP_ACT_ALLOW, nr, UInt32(compares.count), &compares)
                }
            case .argumentWithout(let index, let mask, _):
                var compare = scmp_arg_cmp(arg: UInt32(index), op: SCMP_CMP_MASKED_EQ, datum_a: mask, datum_b: 0)
                rc = seccomp_rule_add_array(raw, SCMP_ACT_ALLOW, nr, 1, &compare)
            case .ownProcess(let index, _):
                var compare = scmp_arg_cmp(arg: UInt32(index), op: SCMP_CMP_EQ, datum_a: pid, datum_b: 0)
                rc = seccomp_rule_add_array(raw, SCMP_ACT_ALLOW, nr, 1, &compare)
            case .fails(let errno, _):
                rc = seccomp_rule_add_array(raw, Self.actionErrno | (UInt32(errno) & 0xffff), nr, 0, nil)
            }
            guard rc == 0 else {
                throw ConfinementError(.buildFilter, errno: -rc, "rule for \(rule.name)")
            }
        }
    }

    /// SCMP_ACT_ERRNO(0), a function-like macro Swift does not import.
    static let actionErrno: UInt32 = 0x0005_0000

    private func attribute(_ attribute: scmp_filter_attr, _ value: UInt32, _ name: String) throws(ConfinementError) {
        let rc = seccomp_attr_set(raw, attribute, value)
        guard rc == 0 else { throw ConfinementError(.buildFilter, errno: -rc, name) }
    }

    deinit { seccomp_release(raw) }
}
