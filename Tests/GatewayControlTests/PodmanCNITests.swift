// gatewayd-cni under a real container runtime: Podman (CNI backend, runc) starts a busybox
// container on a gatewayd network, and the test checks what a user of `podman run -p` would:
// the published port answers, the container reaches the host, and `podman rm` leaves nothing.
import CNI
import Foundation
import GatewayControl
import GatewayTestSupport
import Testing

/// A Podman whose storage, state, network configurations and plugin directory all belong to
/// the test, so nothing of the host's containers is seen or touched.
final class PodmanRuntime: Sendable {
    static let available = ["/usr/bin/podman", "/usr/sbin/runc", "/usr/bin/busybox"].allSatisfy {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    let directory: String
    let network: String
    let image: String

    /// `network` is the name the conflist gives; `control` the gatewayd socket its plugin uses.
    init(tag: String, control: String) throws {
        directory = "/tmp/gwpod-\(tag)"
        network = "gwtest-\(tag)"
        image = "localhost/gwtest-busybox-\(tag):1"
        let fm = FileManager.default
        for sub in ["plugins", "networks", "rootfs/bin", "rootfs/www", "rootfs/etc", "rootfs/tmp"] {
            try fm.createDirectory(atPath: "\(directory)/\(sub)", withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: BuiltProducts.gatewaydCNI, toPath: "\(directory)/plugins/gatewayd-cni")
        try """
        [network]
        network_backend = "cni"
        cni_plugin_dirs = ["\(directory)/plugins"]
        network_config_dir = "\(directory)/networks"
        [engine]
        runtime = "runc"
        cgroup_manager = "cgroupfs"
        events_logger = "file"
        # Podman holds a published host port open itself (for portmap, whose DNAT leaves it
        # unbound); gatewayd binds it for real, so Podman must not.
        enable_port_reservation = false
        """.write(toFile: "\(directory)/containers.conf", atomically: true, encoding: .utf8)
        try """
        {"cniVersion": "1.0.0", "name": "\(network)",
         "plugins": [{"type": "gatewayd-cni", "control": "\(control)", "capabilities": {"portMappings": true}}]}
        """.write(toFile: "\(directory)/networks/\(network).conflist", atomically: true, encoding: .utf8)
    }

    /// What a podman command printed and how it ended.
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// podman with the test's own root, run root, tmpdir and configuration.
    @discardableResult
    func podman(_ arguments: String...) throws -> Output { try podman(arguments) }

    /// Spawned and waited for with posix_spawn and waitpid rather than Process: `podman run -d`
    /// exits leaving conmon behind with whatever descriptors podman was given, and Process was
    /// seen never to notice podman's exit then (left a zombie). Output goes to files, which no
    /// reader waits on to close; `timeout` bounds a podman that hangs.
    func podman(_ arguments: [String]) throws -> Output {
        let global = [
            "--root", "\(directory)/root", "--runroot", "\(directory)/runroot", "--tmpdir", "\(directory)/tmp",
            "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "--network-config-dir", "\(directory)/networks",
        ]
        let argv = ["/usr/bin/timeout", "120", "/usr/bin/podman"] + global + arguments
        var env = ProcessInfo.processInfo.environment
        env["CONTAINERS_CONF"] = "\(directory)/containers.conf"
        let envp = env.map { "\($0.key)=\($0.value)" }
        let files = ["\(directory)/podman.out", "\(directory)/podman.err"]

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, files[0], O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, files[1], O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnvp = envp.map { strdup($0) } + [nil]
        defer { (cArgv + cEnvp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgv, cEnvp)
        guard rc == 0 else { throw HarnessError("posix_spawn podman: \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = files.map { (try? String(contentsOfFile: $0, encoding: .utf8)) ?? "" }
        // WIFEXITED / WEXITSTATUS, which Swift does not import.
        let exited = status & 0x7F == 0
        return Output(status: exited ? (status >> 8) & 0xFF : 128 + (status & 0x7F), stdout: text[0], stderr: text[1])
    }

    /// An image of busybox-static alone, imported offline, serving `page` as /www/index.html.
    func importImage(page: String) throws {
        let rootfs = "\(directory)/rootfs"
        try FileManager.default.copyItem(atPath: "/usr/bin/busybox", toPath: "\(rootfs)/bin/busybox")
        for applet in ["sh", "httpd", "wget", "cat", "sleep", "ip"] {
            try FileManager.default.createSymbolicLink(atPath: "\(rootfs)/bin/\(applet)", withDestinationPath: "busybox")
        }
        try page.write(toFile: "\(rootfs)/www/index.html", atomically: true, encoding: .utf8)
        try TestHost.run(["tar", "-C", rootfs, "-cf", "\(directory)/image.tar", "."])
        let imported = try podman("import", "\(directory)/image.tar", image)
        guard imported.status == 0 else { throw HarnessError("podman import: \(imported.stderr)") }
    }

    /// `podman run -d ARGS`: the container's full ID, which is CNI_CONTAINERID.
    func run(_ arguments: [String]) throws -> String {
        // The machine's default limits are above what runc may set in a container here.
        let result = try podman(["run", "-d", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"] + arguments)
        guard result.status == 0 else { throw HarnessError("podman run: \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Removes the containers (their CNI DEL runs then), the image and every file.
    func tearDown() {
        // Every container of this root, a half-created one too.
        _ = try? podman("rm", "--all", "--force", "--time", "0")
        _ = try? podman("rmi", "-f", image)
        _ = try? runProgram("/bin/rm", ["-rf", directory])
    }
}

@Suite(.enabled(if: TestHost.canCreateDevices && PodmanRuntime.available, "needs root, /dev/net/tun, podman and runc"))
struct PodmanCNITests {
    @Test func podmanRunPublishesReachesTheHostAndRemovesCleanly() throws {
        let h = try DaemonHarness()
        defer { h.tearDown() }
        try h.start()
        let podman = try PodmanRuntime(tag: h.scratch.tag, control: h.socketPath)
        defer { podman.tearDown() }
        let page = "served from the container \(h.scratch.tag)\n"
        try podman.importImage(page: page)

        // A server on the host's loopback, which the container reaches through its gateway.
        let served = "\(podman.directory)/served"
        try FileManager.default.createDirectory(atPath: served, withIntermediateDirectories: true)
        try "from the host \(h.scratch.tag)\n".write(toFile: "\(served)/file", atomically: true, encoding: .utf8)
        let servers = GatewayTestSupport.BackgroundProcesses()
        defer { servers.killAll() }
        let hostServerPort = TestHost.freePort()
        _ = try servers.start(["python3", "-m", "http.server", String(hostServerPort), "--bind", "127.0.0.1", "--directory", served])
        try TestHost.waitForListener(port: hostServerPort)

        let hostPort = Int(TestHost.freePort())
        let container = try podman.run([
            "-p", "\(hostPort):80", "--network", podman.network, podman.image, "httpd", "-f", "-p", "80", "-h", "/www",
        ])
        let client = ControlClient(socketPath: h.socketPath)
        let id = SandboxIdentity.sandboxID(
            network: podman.network, attachment: Attachment(containerID: container, ifname: "eth0"))
        let view = try client.sandbox(id)
        #expect(view.tap == "eth0")
        #expect(view.ports.map(\.hostPort) == [hostPort] && view.ports.first?.guestPort == 80)

        // The published port answers from the host with the container's page.
        var fetched = ""
        let answered = eventually(seconds: 10, every: 0.1) {
            fetched = (try? TestHost.run(["curl", "-sS", "--max-time", "3", "http://127.0.0.1:\(hostPort)/index.html"])) ?? ""
            return fetched == page
        }
        #expect(answered, "curl 127.0.0.1:\(hostPort) got '\(fetched)'")

        // The container reaches the host's loopback server through the gateway's address.
        let wget = try podman.podman("exec", container, "wget", "-qO-", "http://\(view.gatewayIPv4):\(hostServerPort)/file")
        #expect(wget.status == 0 && wget.stdout == "from the host \(h.scratch.tag)\n", "\(wget.stderr)")

        // Podman's own view of the attachment is the plugin's result.
        let inspect = try podman.podman("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}/{{.IPPrefixLen}} {{.Gateway}}{{end}}", container)
        #expect(inspect.stdout == "\(view.guestIPv4)/\(view.prefixLength) \(view.gatewayIPv4)\n", "\(inspect.stdout)")

        let namespace = try #require(view.namespace)
        let removed = try podman.podman("rm", "-f", "-t", "0", container)
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(throws: ControlError.self) { try client.sandbox(id) }
        #expect(try client.sandboxes().isEmpty)
        #expect(try client.call("GET", "/v1/routes", as: [RouteView].self).isEmpty)
        // The namespace (and the interface in it) is gone, and so is the published port.
        #expect(!FileManager.default.fileExists(atPath: namespace.hasPrefix("/") ? namespace : "/run/netns/\(namespace)"))
        let after = try runProgram("/usr/bin/curl", ["-sS", "--max-time", "3", "http://127.0.0.1:\(hostPort)/"])
        #expect(after.status != 0)
        #expect(h.stateFiles().isEmpty)
    }
}
