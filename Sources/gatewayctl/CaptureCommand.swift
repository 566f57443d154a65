import ArgumentParser
import GatewayControl

// capture: a sandbox's frames as pcap (tcpdump's format), written to a file or piped on.
#if canImport(Glibc)
    import Glibc
#endif

struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Capture a sandbox's frames (both directions) as pcap.",
        discussion:
            "Runs until --count frames, --seconds, Ctrl-C, or the sandbox's detach. Read with `tcpdump -r FILE`.")

    @OptionGroup var options: ControlOptions

    @Argument(help: "The sandbox ID.")
    var id: String

    @Option(name: .short, help: "Write to FILE (default: standard output, e.g. `| tcpdump -r -`).")
    var w: String?

    @Option(help: "Stop after N frames.")
    var count: Int?

    @Option(help: "Stop after S seconds.")
    var seconds: Double?

    func validate() throws {
        if let count, count <= 0 { throw ValidationError("--count must be a positive number of frames") }
        if let seconds, seconds <= 0 { throw ValidationError("--seconds must be positive") }
        if w == nil, isatty(STDOUT_FILENO) != 0 {
            throw ValidationError(
                "pcap is binary: pass -w FILE, or pipe it on (gatewayctl capture \(id) | tcpdump -r -)")
        }
    }

    func run() throws {
        _ = try perform { () throws(ControlError) in try checkID(id) }
        let fd: Int32
        if let w {
            fd = open(w, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                printError("gatewayctl: cannot write \(w): \(String(cString: strerror(errno)))")
                throw ExitCode.failure
            }
        } else {
            fd = STDOUT_FILENO
        }
        defer { if fd != STDOUT_FILENO { close(fd) } }
        var query: [String] = []
        if let count { query.append("count=\(count)") }
        if let seconds { query.append("seconds=\(seconds)") }
        let path = "/v1/sandboxes/\(id)/capture" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
        var counter = PcapRecordCounter()
        var client = options.client
        client.timeout = nil
        try perform { () throws(ControlError) in
            try client.stream("GET", path) { chunk in
                counter.consume(chunk)
                return writeAll(fd, chunk)
            }
        }
        printError("captured \(counter.records) frame(s)\(w.map { " to \($0)" } ?? "")")
    }
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = write(fd, raw.baseAddress! + done, raw.count - done)
            if n <= 0 { return false }
            done += n
        }
        return true
    }
}

/// Counts pcap records in a stream that arrives in arbitrary pieces.
struct PcapRecordCounter {
    private(set) var records = 0
    private var skip = 24  // the file header
    private var header: [UInt8] = []

    mutating func consume(_ bytes: [UInt8]) {
        var i = 0
        while i < bytes.count {
            if skip > 0 {
                let n = min(skip, bytes.count - i)
                skip -= n
                i += n
                continue
            }
            header.append(bytes[i])
            i += 1
            if header.count == 16 {
                // The captured length, in the writer's byte order (ours: gatewayd runs here).
                let captured = Int(header[8]) | Int(header[9]) << 8 | Int(header[10]) << 16 | Int(header[11]) << 24
                records += 1
                skip = captured
                header.removeAll(keepingCapacity: true)
            }
        }
    }
}
