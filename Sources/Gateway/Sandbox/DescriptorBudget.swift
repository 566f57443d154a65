// File descriptor accounting: the process-wide ledger of what the data path may hold (the open
// files limit, less a reserve for the control plane and what was open at start), and each
// sandbox's budget within it, so that one sandbox can never starve the others or the API.
#if canImport(Glibc)
import Glibc
#endif
import CGatewayShims
import Link
import Synchronization
import SystemPackage

public struct DescriptorLimits: Sendable {
    /// Descriptors the data path never takes: control API connections, state files, and the
    /// netlink sockets and namespace handles an attach opens for a moment.
    public var controlReserve = 64
    /// What one sandbox's flows, sessions, listeners and accepted connections may hold at once;
    /// nil: an eighth of what the data path may hold, at least 64.
    public var perSandbox: Int?

    public init() {}
}

/// The descriptors the gateway's data path holds: each sandbox's device, and every host socket
/// of its flows. Safe from any thread.
public final class DescriptorLedger: Sendable {
    /// RLIMIT_NOFILE's soft limit when the gateway started.
    public let processLimit: Int
    /// Open when the gateway started (the runtime's, the logs').
    public let openAtStart: Int
    public let controlReserve: Int
    /// What the data path may hold at once.
    public let capacity: Int
    /// Each sandbox's budget within it.
    public let perSandbox: Int
    private let held = Atomic<Int>(0)

    init(limits: DescriptorLimits) {
        var rl = rlimit()
        // RLIM_INFINITY is all ones; a limit that large is no limit at all.
        let ok = getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &rl) == 0
        let limit = ok && rl.rlim_cur < 1 << 30 ? Int(rl.rlim_cur) : 1 << 30
        processLimit = limit
        openAtStart = DescriptorLedger.openDescriptors()
        controlReserve = max(0, limits.controlReserve)
        capacity = max(0, limit - controlReserve - openAtStart)
        perSandbox = max(1, min(capacity, limits.perSandbox ?? max(64, capacity / 8)))
    }

    public var inUse: Int { held.load(ordering: .relaxed) }

    /// Takes one if the data path has one left.
    func take() -> Bool {
        var current = held.load(ordering: .relaxed)
        while current < capacity {
            let (exchanged, original) = held.compareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func give() { held.subtract(1, ordering: .relaxed) }

    /// Why an attach found none left, with the numbers an operator needs.
    func exhaustedMessage(sandbox id: String) -> String {
        "no file descriptor left for sandbox '\(id)': the sandboxes hold \(inUse) of the \(capacity) descriptors "
            + "the data path may use (open files limit \(processLimit), \(controlReserve) kept for the control API): "
            + "detach sandboxes or raise the limit (LimitNOFILE= or ulimit -n)"
    }

    /// Whether `error` is, or the process now is, out of descriptors (EMFILE or ENFILE): the
    /// call that failed for want of one may have reported it in its own words, and the
    /// descriptors it held may be free again by the time the error arrives here.
    static func outOfDescriptors(after error: any Error) -> Bool {
        let system: Errno? =
            switch error {
            case let e as Errno: e
            case let e as LinkError: e.systemError
            case let e as GatewayError:
                switch e.cause {
                case .system(let s): s
                case .link(let l): l.systemError
                case nil: nil
                }
            default: nil
            }
        if system == .tooManyOpenFiles || system == .tooManyOpenFilesInSystem { return true }
        // libnl's errors carry no errno, only words.
        let text = "\(error)"
        for e in [EMFILE, ENFILE] {
            if let s = strerror(e), text.contains(String(cString: s)) { return true }
        }
        return processOutOfDescriptors()
    }

    /// Whether the process cannot open another descriptor right now (EMFILE or ENFILE).
    static func processOutOfDescriptors() -> Bool {
        do {
            try OwnedDescriptor.adopting(
                result: socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            ).close()
            return false
        } catch {
            return error == .tooManyOpenFiles || error == .tooManyOpenFilesInSystem
        }
    }

    static func openDescriptors() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(dir) }
        var n = 0
        while let entry = readdir(dir) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { n += 1 }
        }
        // The directory's own descriptor, closed again.
        return max(0, n - 1)
    }
}

/// One sandbox's share of the ledger. Each host socket of its data path holds a slot for as long
/// as it is open; a flow that finds none is refused (and counted).
final class DescriptorBudget: Sendable {
    let ledger: DescriptorLedger?
    let limit: Int
    private let held = Atomic<Int>(0)
    private let refusals = Atomic<Int>(0)

    init(ledger: DescriptorLedger?, limit: Int) {
        self.ledger = ledger
        self.limit = limit
    }

    /// No limit beyond the process's own (relays built on their own, as in tests).
    static func unlimited() -> DescriptorBudget { DescriptorBudget(ledger: nil, limit: Int.max) }

    var inUse: Int { held.load(ordering: .relaxed) }
    /// Flows, sessions and connections refused for want of a descriptor.
    var refused: Int { refusals.load(ordering: .relaxed) }

    /// A slot, or nil (counted) when the sandbox or the data path has none left.
    func take() -> DescriptorSlot? {
        if held.wrappingAdd(1, ordering: .relaxed).newValue > limit {
            held.subtract(1, ordering: .relaxed)
            refusals.add(1, ordering: .relaxed)
            return nil
        }
        if let ledger, !ledger.take() {
            held.subtract(1, ordering: .relaxed)
            refusals.add(1, ordering: .relaxed)
            return nil
        }
        return DescriptorSlot(self)
    }

    fileprivate func release() {
        held.subtract(1, ordering: .relaxed)
        ledger?.give()
    }
}

/// A descriptor held against a budget; given back when this goes.
final class DescriptorSlot: Sendable {
    private let budget: DescriptorBudget

    fileprivate init(_ budget: DescriptorBudget) { self.budget = budget }

    deinit { budget.release() }
}
