// The confinement-relevant lines of /proc/PID/status (capability sets, ids, no_new_privs, seccomp
// mode, thread count), read to check that a drop took effect rather than trusting return codes.
#if canImport(Glibc)
    import Glibc
#endif

public struct ProcessStatus: Sendable, Equatable {
    /// Effective, permitted, inheritable, bounding and ambient capability sets, as bit masks.
    public var capEff: UInt64
    public var capPrm: UInt64
    public var capInh: UInt64
    public var capBnd: UInt64
    public var capAmb: UInt64
    /// Real, effective, saved and filesystem uid (the order of the Uid: line).
    public var uids: [UInt32]
    public var gids: [UInt32]
    /// Supplementary groups.
    public var groups: [UInt32]
    public var noNewPrivs: Int
    /// 0 none, 1 strict, 2 filter.
    public var seccomp: Int
    public var threads: Int

    /// The status lines this type reads, in the order they appear, for printing.
    public static let fieldNames = [
        "Uid", "Gid", "Groups", "Threads", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
    ]

    /// Parses the text of a status file; a line it needs that is missing or malformed is nil.
    public init?(text: String) {
        var fields: [Substring: Substring] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon]] = line[line.index(after: colon)...]
        }
        func hex(_ name: Substring) -> UInt64? {
            fields[name].flatMap { UInt64($0.trimmingWhitespace(), radix: 16) }
        }
        func numbers(_ name: Substring) -> [UInt32]? {
            guard let value = fields[name] else { return nil }
            let parts = value.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let parsed = parts.compactMap { UInt32($0) }
            return parsed.count == parts.count ? parsed : nil
        }
        func number(_ name: Substring) -> Int? { fields[name].flatMap { Int($0.trimmingWhitespace()) } }
        guard let capEff = hex("CapEff"), let capPrm = hex("CapPrm"), let capInh = hex("CapInh"),
            let capBnd = hex("CapBnd"), let capAmb = hex("CapAmb"), let uids = numbers("Uid"),
            let gids = numbers("Gid"), let groups = numbers("Groups"), let noNewPrivs = number("NoNewPrivs"),
            let seccomp = number("Seccomp"), let threads = number("Threads")
        else { return nil }
        self.capEff = capEff
        self.capPrm = capPrm
        self.capInh = capInh
        self.capBnd = capBnd
        self.capAmb = capAmb
        self.uids = uids
        self.gids = gids
        self.groups = groups
        self.noNewPrivs = noNewPrivs
        self.seccomp = seccomp
        self.threads = threads
    }

    /// Reads /proc/self/status, or /proc/PID/status.
    public static func read(pid: Int32? = nil) -> ProcessStatus? {
        let path = pid.map { "/proc/\($0)/status" } ?? "/proc/self/status"
        return readSmallFile(path).flatMap { ProcessStatus(text: $0) }
    }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return s
    }
}

/// The whole of a small file (procfs, sysfs) through open/read, no Foundation; nil if unreadable.
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { return nil }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}
