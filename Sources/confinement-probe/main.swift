// Test-only: confines itself as the gatewayd worker will (dropPrivileges, then the worker's
// system-call filter), then reports its status, runs an allowed workload, or breaks the rules.
// Usage: confinement-probe USER status | workload DIR | forbidden CALL; confinement-probe list
// prints the allow-list as a Markdown table (Tools/README-confinement.md) without confining.
import CGatewayShims
import CSeccomp
import Confinement
import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

func fail(_ message: String) -> Never {
    let line = "confinement-probe: \(message)\n"
    _ = write(2, line, line.utf8.count)
    exit(1)
}

func check(_ ok: Bool, _ what: String) {
    if !ok { fail("\(what): \(String(cString: strerror(errno)))") }
}

/// The allow-list, one Markdown row per rule, grouped as the table declares them.
func printTable() {
    let filter = SyscallFilter()
    print("\(filter.count) system calls allowed.\n")
    for group in SyscallFilter.Group.allCases {
        let rules = filter.rules.filter { $0.group == group }
        print("### \(group.rawValue) (\(rules.count))\n")
        print("| system call | why | restriction |")
        print("|---|---|---|")
        for rule in rules {
            print("| `\(rule.name)` | \(rule.reason) | \(rule.condition.why ?? "") |")
        }
        print("")
    }
}

let arguments = CommandLine.arguments
if arguments.count == 2 && arguments[1] == "list" {
    printTable()
    exit(0)
}
guard arguments.count >= 3 else { fail("usage: confinement-probe USER status | workload DIR | forbidden CALL") }
// Read between the drop and the filter, which does not allow PR_GET_PDEATHSIG.
let parentDeathSignal: Int32
do {
    try Confinement.dropPrivileges(to: arguments[1], parentDeathSignal: SIGKILL)
    parentDeathSignal = gw_parent_death_signal()
    try SyscallFilter().install()
} catch {
    fail("\(error)")
}

/// The /proc/self/status lines the tests read, as they are, and the parent death signal.
func printStatus(parentDeathSignal: Int32) {
    let fd = open("/proc/self/status", O_RDONLY)
    check(fd >= 0, "open /proc/self/status")
    var bytes = [UInt8](repeating: 0, count: 16384)
    let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    check(n > 0, "read /proc/self/status")
    close(fd)
    for line in String(decoding: bytes[..<n], as: UTF8.self).split(separator: "\n") {
        if let name = line.split(separator: ":").first, ProcessStatus.fieldNames.contains(String(name)) {
            print(line)
        }
    }
    print("Pid:\t\(getpid())")
    print("ParentDeathSignal:\t\(parentDeathSignal)")
}

/// What the worker does all day, in miniature: threads, epoll with an eventfd and a timerfd,
/// TCP and UDP on loopback, and a state file written, synced, renamed and removed.
func workload(directory: String) {
    // Threads: Dispatch's pool and a plain pthread.
    let group = DispatchGroup()
    for _ in 0..<4 { DispatchQueue.global().async(group: group) { _ = getpid() } }
    group.wait()
    var thread = pthread_t()
    check(pthread_create(&thread, nil, { _ in nil }, nil) == 0, "pthread_create")
    check(pthread_join(thread, nil) == 0, "pthread_join")

    // epoll, eventfd, timerfd.
    let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
    check(epoll >= 0, "epoll_create1")
    let event = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
    check(event >= 0, "eventfd")
    var watch = epoll_event()
    watch.events = EPOLLIN.rawValue
    watch.data.fd = event
    check(epoll_ctl(epoll, EPOLL_CTL_ADD, event, &watch) == 0, "epoll_ctl")
    var one: UInt64 = 1
    check(write(event, &one, 8) == 8, "write eventfd")
    var ready = [epoll_event](repeating: epoll_event(), count: 4)
    check(epoll_wait(epoll, &ready, 4, 1000) == 1, "epoll_wait")
    // timerfd through syscall(2): the Glibc module does not export <sys/timerfd.h>.
    let timer = Int32(
        gw_raw_syscall(
            Int(SyscallFilter.number(of: "timerfd_create")!), Int(CLOCK_MONOTONIC), Int(O_NONBLOCK | O_CLOEXEC), 0, 0))
    check(timer >= 0, "timerfd_create")
    var due = itimerspec(it_interval: timespec(), it_value: timespec(tv_sec: 0, tv_nsec: 1_000_000))
    let armed = withUnsafePointer(to: &due) {
        gw_raw_syscall(Int(SyscallFilter.number(of: "timerfd_settime")!), Int(timer), 0, Int(bitPattern: $0), 0)
    }
    check(armed == 0, "timerfd_settime")
    usleep(2000)

    // TCP on 127.0.0.1: listen, connect, accept, a few bytes each way.
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    check(listener >= 0, "socket")
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            check(bind(listener, pointer, length) == 0, "bind")
            check(listen(listener, 4) == 0, "listen")
            check(getsockname(listener, pointer, &length) == 0, "getsockname")
        }
    }
    let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    check(client >= 0, "socket")
    withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { check(connect(client, $0, length) == 0, "connect") }
    }
    let server = accept(listener, nil, nil)
    check(server >= 0, "accept")
    check(send(client, "ping", 4, 0) == 4, "send")
    var reply = [UInt8](repeating: 0, count: 16)
    check(recv(server, &reply, 16, 0) == 4, "recv")
    check(shutdown(client, Int32(SHUT_WR)) == 0, "shutdown")

    // UDP on ::1.
    let udp = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    check(udp >= 0, "socket udp")
    var local = sockaddr_in6()
    local.sin6_family = sa_family_t(AF_INET6)
    local.sin6_addr.__in6_u.__u6_addr8.15 = 1
    var localLength = socklen_t(MemoryLayout<sockaddr_in6>.size)
    withUnsafeMutablePointer(to: &local) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            check(bind(udp, pointer, localLength) == 0, "bind udp")
            check(getsockname(udp, pointer, &localLength) == 0, "getsockname udp")
            check(sendto(udp, "dgram", 5, 0, pointer, localLength) == 5, "sendto")
        }
    }
    check(recvfrom(udp, &reply, 16, 0, nil, nil) == 5, "recvfrom")

    // A state file: written, synced, renamed over, removed.
    let temporary = directory + "/.state.tmp"
    let final = directory + "/state.json"
    let file = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    check(file >= 0, "open \(temporary)")
    check(write(file, "{}", 2) == 2, "write state file")
    check(fsync(file) == 0, "fsync")
    close(file)
    check(rename(temporary, final) == 0, "rename")
    check(unlink(final) == 0, "unlink")

    // getaddrinfo with AI_ADDRCONFIG, as swift-nio resolves an address: /etc/hosts, and a
    // NETLINK_ROUTE socket to see which families the host has.
    var hints = addrinfo()
    hints.ai_flags = AI_ADDRCONFIG
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var found: UnsafeMutablePointer<addrinfo>? = nil
    check(getaddrinfo("localhost", "80", &hints, &found) == 0 && found != nil, "getaddrinfo")
    freeaddrinfo(found)

    var random: UInt64 = 0
    let got = withUnsafeMutablePointer(to: &random) {
        gw_raw_syscall(Int(SyscallFilter.number(of: "getrandom")!), Int(bitPattern: $0), 8, 0, 0)
    }
    check(got == 8, "getrandom")
    for fd in [epoll, event, timer, listener, client, server, udp] { close(fd) }
    print("workload ok")
}

/// Makes one system call the filter does not allow; the kernel kills the process before it returns.
func forbidden(_ call: String) -> Never {
    print("calling \(call)")
    fflush(nil)
    switch call {
    case "netlink":
        // socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC): socket is allowed, and netlink for
        // NETLINK_ROUTE, but not this protocol.
        _ = gw_raw_syscall(Int(SyscallFilter.number(of: "socket")!), Int(AF_NETLINK), Int(SOCK_RAW.rawValue), 16, 0)
    case "packet":
        // socket(AF_PACKET, SOCK_RAW, 0): a family the filter leaves out.
        _ = gw_raw_syscall(Int(SyscallFilter.number(of: "socket")!), Int(AF_PACKET), Int(SOCK_RAW.rawValue), 0, 0)
    case "tunsetiff":
        // ioctl(0, TUNSETIFF, NULL): ioctl is allowed, this request is not.
        _ = gw_raw_syscall(Int(SyscallFilter.number(of: "ioctl")!), 0, 0x4004_54ca, 0, 0)
    default:
        guard let nr = SyscallFilter.number(of: call) else { fail("no system call \(call)") }
        _ = gw_raw_syscall(Int(nr), 0, 0, 0, 0)
    }
    fail("\(call) returned")
}

switch arguments[2] {
case "status": printStatus(parentDeathSignal: parentDeathSignal)
case "workload" where arguments.count == 4: workload(directory: arguments[3])
case "forbidden" where arguments.count == 4: forbidden(arguments[3])
default: fail("unknown command \(arguments[2...])")
}
fflush(nil)
exit(0)
