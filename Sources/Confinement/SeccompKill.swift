// The supervisor's reading of a worker's death by SIGSYS: the kernel's audit record of the seccomp
// kill (type 1326) in /dev/kmsg names the system call that was not on the list.
import CSeccomp

#if canImport(Glibc)
    import Glibc
#endif

public struct SeccompKill: Sendable, Equatable, CustomStringConvertible {
    /// The killed process, as the kernel's init pid namespace numbers it.
    public var pid: Int32
    /// The system call number, on `architecture`.
    public var syscall: Int32
    /// Its name (libseccomp's table), nil when libseccomp does not know the number.
    public var name: String?
    /// The AUDIT_ARCH value of the call's ABI (0xc000003e for x86_64).
    public var architecture: UInt32
    /// The thread's name (comm), as the record gives it.
    public var command: String?

    public var description: String {
        let named = name.map { " (\($0))" } ?? ""
        let comm = command.map { " in thread \"\($0)\"" } ?? ""
        return "system call \(syscall)\(named) not allowed by the seccomp filter\(comm) (pid \(pid))"
    }

    /// Parses one /dev/kmsg record ("6,1234,5678,-;audit: type=1326 audit(...): ... pid=N ...
    /// syscall=N ..."); nil when it is not a seccomp audit record.
    public init?(kernelLogRecord record: Substring) {
        let text = record.split(separator: ";", maxSplits: 1).last ?? record
        guard text.contains("type=1326") else { return nil }
        var fields: [Substring: Substring] = [:]
        for word in text.split(separator: " ") {
            guard let equals = word.firstIndex(of: "=") else { continue }
            fields[word[..<equals]] = word[word.index(after: equals)...]
        }
        guard let pid = fields["pid"].flatMap({ Int32($0) }), let syscall = fields["syscall"].flatMap({ Int32($0) })
        else { return nil }
        self.pid = pid
        self.syscall = syscall
        architecture = fields["arch"].flatMap { UInt32($0, radix: 16) } ?? 0
        // comm="name": the kernel quotes it, or writes hex when it has unusual bytes.
        command = fields["comm"].map { $0.hasPrefix("\"") ? String($0.dropFirst().dropLast()) : String($0) }
        name = SyscallFilter.name(of: syscall, architecture: architecture)
    }

    /// Finds the record of `pid`'s seccomp kill in the kernel log, waiting up to `timeout` for it
    /// to appear. Reads /dev/kmsg from the oldest record it still holds, so the record of a death
    /// already reaped is found too.
    ///
    /// The record reaches /dev/kmsg when no audit daemon takes it (kernel.seccomp.actions_logged
    /// must include kill_process, the default), and printk may drop it under a storm of messages:
    /// nil means none was seen, not that the death had another cause.
    ///
    /// - Throws: ``ConfinementError`` at `readKernelLog` when /dev/kmsg cannot be opened (it needs
    ///   root or CAP_SYSLOG, and kernel.dmesg_restrict).
    public static func find(pid: Int32, timeout: Duration = .milliseconds(500), log path: String = "/dev/kmsg")
        throws(ConfinementError) -> SeccompKill?
    {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw ConfinementError(.readKernelLog, errno: errno, "open \(path)") }
        defer { close(fd) }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        // /dev/kmsg gives one record per read(2), at most 8 KiB (CONSOLE_EXT_LOG_MAX); a plain file
        // (a saved log) gives many lines at once, so each read is split into lines.
        var buffer = [UInt8](repeating: 0, count: 8192)
        var found: SeccompKill? = nil
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                for line in buffer[..<n].split(separator: UInt8(ascii: "\n")) {
                    let record = String(decoding: line, as: UTF8.self)
                    // A pid reused since may have an older record: the newest one wins.
                    if let kill = SeccompKill(kernelLogRecord: Substring(record)), kill.pid == pid { found = kill }
                }
                continue
            }
            // EPIPE: records were overwritten under us; the next read goes on from the oldest left.
            if n < 0 && (errno == EPIPE || errno == EINTR) { continue }
            // EAGAIN from /dev/kmsg, 0 from a file: caught up with the log.
            guard n == 0 || errno == EAGAIN else {
                throw ConfinementError(.readKernelLog, errno: errno, "read \(path)")
            }
            if found != nil || clock.now >= deadline { return found }
            usleep(10_000)
        }
    }
}
