// The host's resolvers as /etc/resolv.conf lists them (resolv.conf(5)): the `nameserver` lines,
// which become the DNS forwarder's default upstreams.
#if canImport(Glibc)
import Glibc
#endif
import Link
import Wire

public enum ResolvConf {
    public static let defaultPath = "/etc/resolv.conf"
    /// The resolver library uses at most this many name servers (MAXNS in <resolv.h>).
    public static let maxNameServers = 3
    /// What the resolver library uses when no `nameserver` line is given: the local host.
    public static let fallback: [(IPAddress, UInt16)] = [(.v4(.loopback), 53)]

    /// The name servers listed in `text`, in order, each on port 53, at most `maxNameServers`.
    /// Lines whose first non-blank character is `#` or `;` are comments, as is anything after
    /// one of those on a line. Scoped IPv6 addresses (`fe80::1%eth0`) are skipped: the
    /// forwarder's sockets are not tied to an interface. Unreadable addresses are skipped too,
    /// as the resolver library does.
    public static func nameServers(in text: String) -> [(IPAddress, UInt16)] {
        var servers: [(IPAddress, UInt16)] = []
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: \.isNewline) {
            let body = line.prefix { $0 != "#" && $0 != ";" }
            let fields = body.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver" else { continue }
            guard !fields[1].contains("%"), let address = IPAddress(fields[1]) else { continue }
            servers.append((address, 53))
            if servers.count == maxNameServers { break }
        }
        return servers
    }

    /// The name servers of the file at `path`; `fallback` when the file is missing or lists none.
    public static func nameServers(path: String = defaultPath) -> [(IPAddress, UInt16)] {
        guard let text = readFile(path) else { return fallback }
        let servers = nameServers(in: text)
        return servers.isEmpty ? fallback : servers
    }

    /// The whole file as text, nil when it cannot be read. Capped at 1 MiB: a resolv.conf is
    /// a few lines, and anything else at that path is not one.
    static func readFile(_ path: String) -> String? {
        guard let file = try? OwnedDescriptor.adopting(result: open(path, O_RDONLY | O_CLOEXEC)) else { return nil }
        let fd = file.rawValue
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            bytes.append(contentsOf: chunk[..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
