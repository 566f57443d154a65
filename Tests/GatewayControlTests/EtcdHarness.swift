// A throwaway etcd cluster on loopback for the cluster tests: one or three members on ports
// picked free, data directories in the test's own temporary directory; killed and removed at
// the end, even after a failed expectation.
import Foundation
import GatewayControl
import GatewayTestSupport

final class EtcdHarness: @unchecked Sendable {
    struct Member {
        var name: String
        var clientPort: UInt16
        var peerPort: UInt16
        var process: Process?
    }

    let directory: String
    private(set) var members: [Member]

    static var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd") }

    init(members count: Int) throws {
        directory = NSTemporaryDirectory() + "gw-etcd-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var ports = Set<UInt16>()
        func port() -> UInt16 {
            while true {
                let p = TestHost.freePort(in: 40000...48000)
                if ports.insert(p).inserted { return p }
            }
        }
        members = (0..<count).map { Member(name: "m\($0)", clientPort: port(), peerPort: port()) }
    }

    deinit { tearDown() }

    var urls: [String] { members.map { "http://127.0.0.1:\($0.clientPort)" } }

    /// Starts every member (again, on the same data, after `stop`) and waits until the cluster
    /// answers a write.
    func start() throws {
        let cluster = members.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
        for i in members.indices {
            let m = members[i]
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/etcd")
            p.arguments = [
                "--name", m.name, "--data-dir", "\(directory)/\(m.name)",
                "--listen-client-urls", "http://127.0.0.1:\(m.clientPort)",
                "--advertise-client-urls", "http://127.0.0.1:\(m.clientPort)",
                "--listen-peer-urls", "http://127.0.0.1:\(m.peerPort)",
                "--initial-advertise-peer-urls", "http://127.0.0.1:\(m.peerPort)",
                "--initial-cluster", cluster, "--initial-cluster-token", "gw-\(members[0].clientPort)",
            ]
            let log = FileHandle(forWritingAtPath: "\(directory)/\(m.name).log") ?? {
                FileManager.default.createFile(atPath: "\(directory)/\(m.name).log", contents: nil)
                return FileHandle(forWritingAtPath: "\(directory)/\(m.name).log")!
            }()
            log.seekToEndOfFile()
            p.standardOutput = log
            p.standardError = log
            p.standardInput = FileHandle.nullDevice
            try p.run()
            members[i].process = p
        }
        let client = EtcdClient(endpoints: members.map { EtcdEndpoint(host: "127.0.0.1", port: Int($0.clientPort)) })
        try waitFor(seconds: 30, every: 0.1) {
            (try? client.range(.init(key: "/probe"), timeout: .seconds(1))) != nil
        }
    }

    /// SIGSTOP to every member: etcd still accepts connections (the kernel does) but never
    /// answers, the outage a client can only notice by its deadlines.
    func freeze() {
        for m in members { if let p = m.process, p.isRunning { kill(p.processIdentifier, SIGSTOP) } }
    }

    /// SIGKILL to every member: etcd down as a crash leaves it.
    func stop() {
        for i in members.indices {
            guard let p = members[i].process else { continue }
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
            }
            members[i].process = nil
        }
    }

    /// GW_KEEP_ETCD=1 keeps the data directories and member logs for a look after a failure.
    func tearDown() {
        stop()
        if ProcessInfo.processInfo.environment["GW_KEEP_ETCD"] == nil { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Every key under `prefix` now, by key.
    func keys(under prefix: String = "/gatewayd/") throws -> [String: String] {
        let client = EtcdClient(endpoints: members.map { EtcdEndpoint(host: "127.0.0.1", port: Int($0.clientPort)) })
        var out: [String: String] = [:]
        for kv in try client.range(.prefix(prefix), timeout: .seconds(2)) { out[kv.key.text] = kv.value.text }
        return out
    }

    /// The `[cluster]` table a daemon uses to join: a short TTL, so expiry fits in a test, and a
    /// claim timeout long enough that a loaded CI machine does not turn a refused duplicate into
    /// an attach that went on locally.
    func clusterTable(node: String, leaseTTL: Int = 3) -> String {
        """

        [cluster]
        etcd = [\(urls.map { "\"\($0)\"" }.joined(separator: ", "))]
        node = "\(node)"
        lease-ttl = \(leaseTTL)
        claim-timeout-ms = 2000

        """
    }
}
