// Dropping root for good in the worker: one user and group, no capabilities in any set, and
// no_new_privs, checked afterwards against /proc/self/status.
import CSeccomp

#if canImport(Glibc)
    import Glibc
#endif

public enum Confinement {
    /// The user and primary group a name or numeric uid stands for.
    public struct Account: Sendable, Equatable {
        public var name: String
        public var uid: uid_t
        public var gid: gid_t
    }

    /// Resolves a user name, or a numeric uid, through the passwd database (getpwnam_r/getpwuid_r).
    ///
    /// - Throws: ``ConfinementError`` at step `resolveUser` when there is no such entry.
    public static func account(for user: String) throws(ConfinementError) -> Account {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        let rc = buffer.withUnsafeMutableBufferPointer { storage in
            if let uid = uid_t(user) {
                getpwuid_r(uid, &entry, storage.baseAddress!, storage.count, &result)
            } else {
                getpwnam_r(user, &entry, storage.baseAddress!, storage.count, &result)
            }
        }
        guard rc == 0, let found = result else {
            throw ConfinementError(.resolveUser, errno: rc, "no passwd entry for user \"\(user)\"")
        }
        return Account(name: String(cString: found.pointee.pw_name), uid: found.pointee.pw_uid, gid: found.pointee.pw_gid)
    }

    /// Makes the calling process `user` for good: supplementary groups set to the user's primary group
    /// (setgroups), every capability dropped from the bounding set (PR_CAPBSET_DROP up to
    /// /proc/sys/kernel/cap_last_cap), ambient capabilities cleared, setresgid and setresuid to the user
    /// (which empties the permitted and effective sets), then PR_SET_NO_NEW_PRIVS; and verifies the
    /// result in /proc/self/status.
    ///
    /// Run it before the process starts a thread: the bounding set belongs to each thread, so
    /// threads that already run would keep theirs. It refuses (step `threadsRunning`) when
    /// /proc/self/status counts more than one thread.
    ///
    /// - Parameter parentDeathSignal: a signal to get when the parent (the supervisor) exits
    ///   (PR_SET_PDEATHSIG). The kernel clears that setting when the uids change, so one set
    ///   before this call is lost; this sets it after, then checks that the parent has not gone
    ///   in between (the process would then belong to another parent and wait for nothing).
    ///
    /// - Returns: The account it switched to.
    /// - Throws: ``ConfinementError`` naming the step that failed. A failure part-way leaves the
    ///   process part-way confined; the caller should exit.
    @discardableResult
    public static func dropPrivileges(to user: String, parentDeathSignal: Int32? = nil) throws(ConfinementError)
        -> Account
    {
        let parent = getppid()
        if let before = ProcessStatus.read(), before.threads != 1 {
            throw ConfinementError(.threadsRunning, "\(before.threads) threads already run; drop privileges before starting any")
        }
        let account = try account(for: user)
        var group = account.gid
        guard setgroups(1, &group) == 0 else {
            throw ConfinementError(.setGroups, errno: errno, "setgroups([\(account.gid)]) for \(account.name)")
        }
        let lastCapability = try readLastCapability()
        for capability in 0...lastCapability {
            let rc = gw_capbset_drop(Int32(capability))
            // EINVAL: a capability this kernel does not know, nothing to drop.
            guard rc == 0 || rc == -EINVAL else {
                throw ConfinementError(.dropBoundingSet, errno: -rc, "PR_CAPBSET_DROP of capability \(capability)")
            }
        }
        let ambient = gw_ambient_clear_all()
        // EINVAL: a kernel without ambient capabilities (before 4.3) has none to clear.
        guard ambient == 0 || ambient == -EINVAL else {
            throw ConfinementError(.clearAmbient, errno: -ambient, "PR_CAP_AMBIENT_CLEAR_ALL")
        }
        let gidSet = gw_setresgid(account.gid)
        guard gidSet == 0 else {
            throw ConfinementError(.setGID, errno: -gidSet, "setresgid(\(account.gid)) for \(account.name)")
        }
        // From root to a non-zero uid: the kernel empties the permitted and effective sets here.
        let uidSet = gw_setresuid(account.uid)
        guard uidSet == 0 else {
            throw ConfinementError(.setUID, errno: -uidSet, "setresuid(\(account.uid)) for \(account.name)")
        }
        if let signal = parentDeathSignal {
            let set = gw_set_parent_death_signal_after_drop(signal)
            guard set == 0 else {
                throw ConfinementError(.parentDeathSignal, errno: -set, "PR_SET_PDEATHSIG \(signal)")
            }
            guard getppid() == parent else {
                throw ConfinementError(.parentDeathSignal, "the parent (pid \(parent)) exited during the drop")
            }
        }
        let noNewPrivs = gw_set_no_new_privs()
        guard noNewPrivs == 0 else {
            throw ConfinementError(.noNewPrivileges, errno: -noNewPrivs, "PR_SET_NO_NEW_PRIVS")
        }
        try verify(account)
        return account
    }

    /// Checks /proc/self/status against what the drop promises.
    static func verify(_ account: Account) throws(ConfinementError) {
        guard let status = ProcessStatus.read() else {
            throw ConfinementError(.verify, errno: errno, "cannot read /proc/self/status")
        }
        var wrong: [String] = []
        if status.capEff != 0 { wrong.append("CapEff \(hex(status.capEff))") }
        if status.capPrm != 0 { wrong.append("CapPrm \(hex(status.capPrm))") }
        if status.capBnd != 0 { wrong.append("CapBnd \(hex(status.capBnd))") }
        if status.capAmb != 0 { wrong.append("CapAmb \(hex(status.capAmb))") }
        if status.noNewPrivs != 1 { wrong.append("NoNewPrivs \(status.noNewPrivs)") }
        if !status.uids.allSatisfy({ $0 == account.uid }) { wrong.append("Uid \(status.uids)") }
        if !status.gids.allSatisfy({ $0 == account.gid }) { wrong.append("Gid \(status.gids)") }
        if status.groups != [account.gid] && !status.groups.isEmpty { wrong.append("Groups \(status.groups)") }
        guard wrong.isEmpty else {
            throw ConfinementError(.verify, "still \(wrong.joined(separator: ", ")) after dropping to \(account.name)")
        }
    }

    /// The highest capability number this kernel knows, from /proc/sys/kernel/cap_last_cap.
    static func readLastCapability() throws(ConfinementError) -> Int {
        guard let text = readSmallFile("/proc/sys/kernel/cap_last_cap") else {
            throw ConfinementError(.readLastCapability, errno: errno, "cannot read /proc/sys/kernel/cap_last_cap")
        }
        // Bounded: the bounding set is a 64-bit mask.
        guard let last = Int(Substring(text).trimmingWhitespace().filter { $0 != "\n" }), (0..<64).contains(last) else {
            throw ConfinementError(.readLastCapability, "unexpected /proc/sys/kernel/cap_last_cap: \(text)")
        }
        return last
    }

    static func hex(_ mask: UInt64) -> String { "0x" + String(mask, radix: 16) }
}
