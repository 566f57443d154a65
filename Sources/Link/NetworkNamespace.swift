// A network namespace held open by file descriptor: by its `ip netns` name under /run/netns, by
// any namespace file (/proc/PID/ns/net), or made fresh; and the safe way to act inside one.
import CGatewayShims
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// An open network namespace. Holding it keeps the namespace alive even after its name is
/// deleted. Nothing here switches the calling thread: work that must run inside the namespace
/// goes through ``perform(_:)``, which uses a thread of its own.
public final class NetworkNamespace: Sendable, CustomStringConvertible {
    /// Where iproute2 (`ip netns add`) keeps named namespaces; names made here are visible to `ip -n`.
    public static let runDirectory = "/run/netns"

    /// The namespace file (nsfs), opened read-only; closed with this object.
    public var fileDescriptor: Int32 { file.rawValue }
    private let file: OwnedDescriptor
    /// The `ip netns` name, when opened or created by name.
    public let name: String?

    private init(owning file: consuming OwnedDescriptor, name: String?) {
        self.file = file
        self.name = name
    }

    public var description: String { name ?? "netns fd \(fileDescriptor)" }

    /// Opens the namespace `ip netns` knows as `name` (/run/netns/NAME).
    /// - Throws: `.noSuchNamespace` when there is none by that name.
    public convenience init(named name: String) throws(LinkError) {
        try NetworkNamespace.validate(name: name, operation: "open namespace")
        let fd = try NetworkNamespace.openNamespaceFile(
            NetworkNamespace.runDirectory + "/" + name, operation: "open namespace", subject: name)
        self.init(owning: fd, name: name)
    }

    /// Opens a namespace file such as /proc/PID/ns/net or a bind mount of one. The path comes
    /// from a client (a CNI runtime), so nothing but a regular file is opened: a FIFO would block
    /// the open and a device file may act on it.
    public convenience init(path: String) throws(LinkError) {
        let operation = "open namespace"
        guard path.hasPrefix("/"), !path.utf8.contains(0), path.utf8.count <= Int(PATH_MAX) else {
            throw LinkError(.invalidArgument, operation: operation, subject: path, reason: "not an absolute path")
        }
        var status = stat()
        guard stat(path, &status) == 0 else {
            let e = errno
            if e == ENOENT || e == ENOTDIR {
                throw LinkError(.noSuchNamespace, operation: operation, subject: path, reason: "no such namespace")
            }
            throw LinkError(errno: e, operation: operation, subject: path)
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw LinkError(.invalidArgument, operation: operation, subject: path, reason: "not a namespace file")
        }
        let fd: OwnedDescriptor
        do {
            fd = try NetworkNamespace.openNamespaceFile(path, operation: operation, subject: path)
        } catch where error.code == .noSuchNamespace {
            // It is there (stat found it) but is some other file: a mistake, not a namespace gone.
            throw LinkError(.invalidArgument, operation: operation, subject: path, reason: "not a namespace file")
        }
        self.init(owning: fd, name: nil)
    }

    /// Which namespace this is: two files name the same namespace exactly when these are equal.
    public var identity: NamespaceIdentity {
        var status = stat()
        // fstat of an open nsfs descriptor cannot fail short of a bad descriptor, which ours is not.
        _ = fstat(fileDescriptor, &status)
        return NamespaceIdentity(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
    }

    /// Takes its own duplicate of a namespace fd the caller already holds (the caller keeps theirs).
    public convenience init(duplicating fd: Int32) throws(LinkError) {
        let copy: OwnedDescriptor
        do {
            copy = try OwnedDescriptor.adopting(result: fcntl(fd, F_DUPFD_CLOEXEC, 0))
        } catch {
            throw LinkError(error, operation: "open namespace", subject: "fd \(fd)")
        }
        try NetworkNamespace.checkIsNamespace(copy.rawValue, operation: "open namespace", subject: "fd \(fd)")
        self.init(owning: copy, name: nil)
    }

    /// The namespace the calling thread is in (normally the process's, the host's).
    public static func current() throws(LinkError) -> NetworkNamespace {
        let fd = try openNamespaceFile("/proc/thread-self/ns/net", operation: "open namespace", subject: "current")
        return NetworkNamespace(owning: fd, name: nil)
    }

    /// Creates a namespace and names it as `ip netns add NAME` does, so `ip -n NAME` reaches it.
    /// - Throws: `.nameTaken` when the name exists, `.permissionDenied` without CAP_SYS_ADMIN.
    public static func create(named name: String) throws(LinkError) -> NetworkNamespace {
        let operation = "create namespace"
        try validate(name: name, operation: operation)
        var rc = gw_netns_prepare_dir(runDirectory)
        if rc < 0 { throw LinkError(errno: -rc, operation: operation, subject: runDirectory) }
        let path = runDirectory + "/" + name
        // The mount point is a plain empty file; O_EXCL makes the name ours or tells us it is taken.
        do {
            try OwnedDescriptor.adopting(result: open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0)).close()
        } catch .fileExists {
            throw LinkError(.nameTaken, operation: operation, subject: name, reason: "a namespace of that name exists")
        } catch {
            throw LinkError(error, operation: operation, subject: name)
        }
        do {
            try IsolatedThread.run(operation: operation) { () throws(LinkError) in
                rc = gw_unshare_net()
                if rc < 0 { throw LinkError(errno: -rc, operation: operation, subject: name) }
                rc = gw_netns_bind_current_thread(path)
                if rc < 0 { throw LinkError(errno: -rc, operation: operation, subject: name) }
            }
        } catch {
            unlink(path)
            throw error
        }
        return try NetworkNamespace(named: name)
    }

    /// Creates a namespace with no name: it lives while this object (or a device or socket in it)
    /// holds it, and needs no cleanup.
    public static func createUnnamed() throws(LinkError) -> NetworkNamespace {
        let operation = "create namespace"
        // The descriptor leaves the isolated thread as a bare number; nothing after it can fail.
        let fd = try IsolatedThread.run(operation: operation) { () throws(LinkError) -> Int32 in
            let rc = gw_unshare_net()
            if rc < 0 { throw LinkError(errno: -rc, operation: operation, subject: "unnamed") }
            return try openNamespaceFile("/proc/thread-self/ns/net", operation: operation, subject: "unnamed").release()
        }
        return NetworkNamespace(owning: OwnedDescriptor(adopting: fd), name: nil)
    }

    /// Removes the name, as `ip netns delete NAME` does. The namespace itself goes when its last
    /// user (an open NetworkNamespace, a socket, a process) lets go; virtual devices in it go too.
    /// - Throws: `.noSuchNamespace` when there is none by that name.
    public static func delete(named name: String) throws(LinkError) {
        let operation = "delete namespace"
        try validate(name: name, operation: operation)
        let path = runDirectory + "/" + name
        let unmounted = gw_netns_unmount(path)
        if unlink(path) < 0 {
            let e = errno
            if e == ENOENT {
                throw LinkError(
                    .noSuchNamespace, operation: operation, subject: name, reason: "no namespace of that name")
            }
            throw LinkError(errno: e, operation: operation, subject: name)
        }
        // EINVAL: the file was there but not a mount (left by a crash mid-create); removing it is the fix.
        if unmounted < 0 && unmounted != -EINVAL {
            throw LinkError(errno: -unmounted, operation: operation, subject: name)
        }
    }

    /// Runs `body` on a fresh thread that has entered this namespace, and waits for it. Sockets
    /// (netlink included) and TAP devices created in `body` belong to this namespace for life,
    /// whichever thread uses them later. The calling thread never changes namespace.
    public func perform<R>(_ body: () throws(LinkError) -> R) throws(LinkError) -> R {
        let fd = fileDescriptor
        let label = description
        return try IsolatedThread.run(operation: "enter namespace") { () throws(LinkError) -> R in
            let rc = gw_setns_net(fd)
            if rc < 0 { throw LinkError(errno: -rc, operation: "enter namespace", subject: label) }
            return try body()
        }
    }

    /// True when both refer to the same namespace (same nsfs inode).
    public func isSame(as other: NetworkNamespace) -> Bool {
        var a = stat()
        var b = stat()
        guard fstat(fileDescriptor, &a) == 0, fstat(other.fileDescriptor, &b) == 0 else { return false }
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }

    // MARK: - Helpers

    private static func validate(name: String, operation: String) throws(LinkError) {
        if name.isEmpty || name == "." || name == ".." || name.utf8.contains(UInt8(ascii: "/"))
            || name.utf8.contains(0) || name.utf8.count > 255
        {
            throw LinkError(.invalidArgument, operation: operation, subject: name, reason: "not a namespace name")
        }
    }

    private static func openNamespaceFile(_ path: String, operation: String, subject: String) throws(LinkError)
        -> OwnedDescriptor
    {
        let file: OwnedDescriptor
        do {
            file = try OwnedDescriptor.adopting(result: open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC))
        } catch .noSuchFileOrDirectory, .notDirectory {
            throw LinkError(.noSuchNamespace, operation: operation, subject: subject, reason: "no such namespace")
        } catch {
            throw LinkError(error, operation: operation, subject: subject)
        }
        try checkIsNamespace(file.rawValue, operation: operation, subject: subject)
        return file
    }

    /// A file under /run/netns that is not a mount (a crash between create and bind) is not a namespace.
    private static func checkIsNamespace(_ fd: Int32, operation: String, subject: String) throws(LinkError) {
        switch gw_netns_check_fd(fd) {
        case 0: return
        case 1:
            throw LinkError(.noSuchNamespace, operation: operation, subject: subject, reason: "not a namespace file")
        case 2:
            throw LinkError(.invalidArgument, operation: operation, subject: subject, reason: "not a network namespace")
        case let rc: throw LinkError(errno: -rc, operation: operation, subject: subject)
        }
    }
}

/// A network namespace's nsfs device and inode: what `ip netns identify` compares, and what a
/// restart checks so that a /proc/PID/ns/net path whose process is gone (and whose PID may name
/// another process by now) is not taken for the namespace a sandbox was attached to.
public struct NamespaceIdentity: Hashable, Sendable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    /// "DEVICE:INODE" in decimal, as kept in a state file.
    public var description: String { "\(device):\(inode)" }

    public init?(_ text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let d = UInt64(parts[0]), let i = UInt64(parts[1]) else { return nil }
        self.init(device: d, inode: i)
    }
}
