// The host ports `publish` picks from when no host port is given: by default the kernel's
// ephemeral range (/proc/sys/net/ipv4/ip_local_port_range) less its reserved ports
// (ip_local_reserved_ports), as Docker's port allocator does.
#if canImport(Glibc)
import Glibc
#endif
import Link

public struct AutoPortRange: Sendable, Hashable {
    public var ports: ClosedRange<UInt16>
    /// Ports in the range that are never handed out.
    public var reserved: Set<UInt16>

    public init(ports: ClosedRange<UInt16>, reserved: Set<UInt16> = []) {
        self.ports = ports
        self.reserved = reserved
    }

    /// Used when /proc cannot be read; IANA's dynamic range (RFC 6335 §6).
    public static let fallback = AutoPortRange(ports: 49152...65535)

    /// The kernel's ephemeral range and reserved ports, or `fallback` when unreadable.
    public static func system() -> AutoPortRange {
        guard let text = readFile("/proc/sys/net/ipv4/ip_local_port_range"), let ports = parseRange(text) else {
            return fallback
        }
        let reserved = readFile("/proc/sys/net/ipv4/ip_local_reserved_ports").flatMap(parseReserved) ?? []
        return AutoPortRange(ports: ports, reserved: reserved)
    }

    /// Parses ip_local_port_range: two numbers separated by white space ("32768\t60999\n").
    /// The kernel keeps the first no greater than the second; a zero lower bound is refused
    /// because port 0 means "any" to bind.
    public static func parseRange(_ text: String) -> ClosedRange<UInt16>? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard fields.count == 2, let lo = UInt16(fields[0]), let hi = UInt16(fields[1]), lo >= 1, lo <= hi else {
            return nil
        }
        return lo...hi
    }

    /// Parses ip_local_reserved_ports: comma-separated ports and ranges ("8080,9000-9010"), or
    /// empty. nil when any item is malformed.
    public static func parseReserved(_ text: String) -> Set<UInt16>? {
        var out: Set<UInt16> = []
        let trimmed = text.split(whereSeparator: { $0 == "\n" || $0 == " " || $0 == "\t" }).joined()
        if trimmed.isEmpty { return out }
        for item in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            switch bounds.count {
            case 1:
                guard let p = UInt16(bounds[0]) else { return nil }
                out.insert(p)
            case 2:
                guard let lo = UInt16(bounds[0]), let hi = UInt16(bounds[1]), lo <= hi else { return nil }
                for p in lo...hi { out.insert(p) }
            default:
                return nil
            }
        }
        return out
    }

    /// How many ports of the range can be handed out.
    public var usableCount: Int { ports.count - reserved.filter { ports.contains($0) }.count }

    private static func readFile(_ path: String) -> String? {
        guard let file = try? OwnedDescriptor.adopting(result: open(path, O_RDONLY | O_CLOEXEC)) else { return nil }
        let fd = file.rawValue
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[..<n]
            if bytes.count > 1 << 20 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
