// The worker's allow-list as data: every name exists here, nothing the supervisor alone does is on
// it, the restrictions hold, and libseccomp builds it into BPF (without installing it: these tests
// run in the test process).
import Confinement
import Foundation
import Testing

@Suite struct SyscallFilterTests {
    let filter = SyscallFilter()

    @Test func everyNameIsASystemCallHere() {
        for rule in SyscallFilter.workerRules {
            #expect(SyscallFilter.number(of: rule.name) != nil, "\(rule.name)")
        }
        #expect(SyscallFilter.number(of: "no_such_call") == nil)
    }

    @Test func eachCallIsListedOnceWithAReason() {
        let names = SyscallFilter.workerRules.map(\.name)
        #expect(Set(names).count == names.count, "listed twice: \(names.filter { n in names.count { $0 == n } > 1 })")
        for rule in SyscallFilter.workerRules {
            #expect(!rule.reason.isEmpty, "\(rule.name) has no reason")
            if case .always = rule.condition { continue }
            #expect(rule.condition.why?.isEmpty == false, "\(rule.name)'s restriction has no reason")
        }
        for group in SyscallFilter.Group.allCases {
            #expect(SyscallFilter.workerRules.contains { $0.group == group }, "group \(group) is empty")
        }
    }

    /// What only the supervisor does (namespaces, mounts), and what no part of gatewayd should do.
    @Test(arguments: [
        "setns", "unshare", "mount", "umount2", "pivot_root", "chroot", "ptrace", "process_vm_readv",
        "process_vm_writev", "execve", "execveat", "fork", "vfork", "kill", "bpf", "perf_event_open",
        "init_module", "finit_module", "kexec_load", "swapon", "reboot", "setuid", "setgid", "setresuid",
        "setresgid", "setgroups", "capset", "keyctl", "add_key", "userfaultfd", "open_by_handle_at",
        "io_uring_setup", "seccomp",
    ])
    func notAllowed(_ name: String) {
        #expect(!filter.names.contains(name))
    }

    @Test func countIsTheNamesAllowed() {
        #expect(filter.count == filter.names.count)
        // clone3 is on the table but answered with ENOSYS, not allowed.
        #expect(!filter.names.contains("clone3"))
        #expect(SyscallFilter.workerRules.contains { $0.name == "clone3" })
        #expect(filter.count > 50)
    }

    @Test func socketsAreInternetUnixAndRouteNetlinkOnly() throws {
        let socket = try #require(SyscallFilter.workerRules.first { $0.name == "socket" })
        guard case .anyOf(let alternatives, _) = socket.condition else {
            Issue.record("socket is not restricted by family: \(socket.condition)")
            return
        }
        typealias Value = SyscallFilter.ArgumentValue
        #expect(alternatives.count == 4)
        for family in [AF_UNIX, AF_INET, AF_INET6] {
            #expect(alternatives.contains([Value(0, UInt64(family))]), "family \(family)")
        }
        // Netlink only with protocol NETLINK_ROUTE (0), and no packet sockets at all.
        #expect(alternatives.contains([Value(0, UInt64(AF_NETLINK)), Value(2, 0)]))
        #expect(!alternatives.contains([Value(0, UInt64(AF_NETLINK))]))
        #expect(!alternatives.contains { $0.contains(Value(0, UInt64(AF_PACKET))) })
    }

    @Test func ioctlLeavesOutTheTunRequests() throws {
        let ioctl = try #require(SyscallFilter.workerRules.first { $0.name == "ioctl" })
        guard case .argument(1, let requests, _) = ioctl.condition else {
            Issue.record("ioctl is not restricted by request: \(ioctl.condition)")
            return
        }
        // TUNSETIFF, TUNSETOFFLOAD, TUNSETPERSIST, TUNSETVNETHDRSZ, SIOCGIFINDEX, NS_GET_NSTYPE.
        for request: UInt64 in [0x4004_54ca, 0x4004_54d0, 0x4004_54cb, 0x4004_54d8, 0x8933, 0xb703] {
            #expect(!requests.contains(request), "request \(String(request, radix: 16)) allowed")
        }
    }

    @Test func cloneRefusesNamespaceFlags() throws {
        let clone = try #require(SyscallFilter.workerRules.first { $0.name == "clone" })
        guard case .argumentWithout(0, let mask, _) = clone.condition else {
            Issue.record("clone is not restricted by flags: \(clone.condition)")
            return
        }
        // CLONE_NEWNET and CLONE_NEWUSER among them; CLONE_THREAD | CLONE_VM not.
        #expect(mask & 0x4000_0000 != 0)
        #expect(mask & 0x1000_0000 != 0)
        #expect(mask & 0x0001_0100 == 0)
    }

    @Test func buildsIntoBPF() throws {
        let path = NSTemporaryDirectory() + "filter-\(getpid()).bpf"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        try #require(fd >= 0)
        defer { unlink(path) }
        try filter.exportBPF(to: fd)
        close(fd)
        let program = try #require(FileManager.default.contents(atPath: path))
        // struct sock_filter is 8 bytes; at least one comparison per allowed call.
        #expect(program.count % 8 == 0)
        #expect(program.count / 8 > filter.count)
    }

    @Test func anUnknownNameFailsToBuild() {
        let broken = SyscallFilter(rules: [.init("no_such_call", .process, "none")])
        #expect {
            try broken.exportBPF(to: -1)
        } throws: { error in
            (error as? ConfinementError)?.step == .buildFilter
                && "\(error)".contains("no_such_call")
        }
    }
}
