// A TAP device opened for the gateway: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR with offloads, so the
// guest side may hand over (and accept) 64 KiB TSO segments behind a virtio-net header.
import CGatewayShims
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// One open queue of a TAP device. The object owns the file descriptor and closes it on deinit;
/// a TAP that is not persistent disappears with its last queue.
///
/// Every frame read or written starts with a virtio-net header of ``vnetHeaderSize`` bytes
/// (virtio spec 1.2 §5.1.6: 10 bytes, or 12 with `num_buffers`).
public final class TAPDevice: Sendable {
    /// Offloads the gateway accepts from the kernel side (TUNSETOFFLOAD, `TUN_F_*`). With
    /// checksum and TSO on, the kernel may send partial checksums and segments up to 64 KiB.
    public struct Offloads: OptionSet, Hashable, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        public static let checksum = Offloads(rawValue: UInt32(GW_TUN_F_CSUM))
        public static let tso4 = Offloads(rawValue: UInt32(GW_TUN_F_TSO4))
        public static let tso6 = Offloads(rawValue: UInt32(GW_TUN_F_TSO6))
        public static let tsoECN = Offloads(rawValue: UInt32(GW_TUN_F_TSO_ECN))
        public static let ufo = Offloads(rawValue: UInt32(GW_TUN_F_UFO))

        /// What the gateway's stack handles: checksum, TSO for IPv4 and IPv6.
        public static let standard: Offloads = [.checksum, .tso4, .tso6]
    }

    /// How to open the device.
    public struct Options: Sendable {
        /// TUNSETOFFLOAD bits; TSO needs `.checksum` (the kernel refuses it otherwise).
        public var offloads: Offloads = .standard
        /// 10 (`struct virtio_net_hdr`) or 12 (`virtio_net_hdr_mrg_rxbuf`, the virtio 1.0 layout).
        public var vnetHeaderSize: Int = 10
        /// Keep the device after the last fd closes (TUNSETPERSIST), for a VM monitor to open later.
        public var persistent: Bool = false
        /// The user allowed to attach to the device without CAP_NET_ADMIN (TUNSETOWNER).
        public var owner: UInt32? = nil
        /// The group allowed to attach (TUNSETGROUP).
        public var group: UInt32? = nil
        /// IFF_MULTI_QUEUE: more fds on the same device through ``openQueue()``.
        public var multiQueue: Bool = false
        /// Create the device inside this namespace instead of the caller's.
        public var namespace: NetworkNamespace? = nil

        public init() {}
    }

    /// The TAP queue's file descriptor, non-blocking and close-on-exec; the number of
    /// ``descriptor``, kept apart so the data path reads it without a lock.
    public let fileDescriptor: Int32
    /// The device name.
    public let name: String
    /// The interface index in the namespace the device was created in. A move to another
    /// namespace keeps it unless it clashes there; look the device up again after a move.
    public let ifindex: Int32
    /// Bytes of virtio-net header before each frame.
    public let vnetHeaderSize: Int
    /// The options it was opened with; the namespace only for a multi-queue device, which
    /// needs it to open more queues (a handle kept open costs a descriptor per device).
    public let options: Options
    /// The open queue; nil once ``close()`` ran. Closing may come from another thread (the
    /// device reaper) than the one that reads frames.
    private let descriptor: Mutex<OwnedDescriptor?>

    /// Creates the TAP device `name`, or attaches to it when it already exists as a free TAP
    /// (a persistent one left for us). The name must carry the project prefix.
    /// - Throws: `.nameTooLong` for names of IFNAMSIZ bytes or more; `.nameTaken` when the name
    ///   belongs to a device that is not a TAP, or to a TAP another fd has open;
    ///   `.permissionDenied` without CAP_NET_ADMIN; `.invalidArgument` for a bad header size.
    public convenience init(name: String, options: Options = Options()) throws(LinkError) {
        let operation = "create TAP"
        // A sweep finds our leftovers by name in the host namespace; a device that lives in another
        // namespace and goes with its last descriptor leaves nothing to sweep, so its name may be
        // the guest's (eth0, as container runtimes ask).
        if options.namespace != nil && !options.persistent {
            try InterfaceName.validate(name, operation: operation)
        } else {
            try InterfaceName.validateOwned(name, operation: operation)
        }
        guard options.vnetHeaderSize == 10 || options.vnetHeaderSize == 12 else {
            throw LinkError(
                .invalidArgument, operation: operation, subject: name,
                reason: "virtio-net header size must be 10 or 12, not \(options.vnetHeaderSize)")
        }
        // The descriptor crosses the namespace's thread as a bare number: nothing between that
        // thread's return and the adoption below can fail.
        let open = { () throws(LinkError) -> (Int32, Int32) in
            try TAPDevice.openConfigured(name: name, options: options, operation: operation)
        }
        let (fd, index) = if let ns = options.namespace { try ns.perform(open) } else { try open() }
        self.init(OwnedDescriptor(adopting: fd), name: name, ifindex: index, options: options)
    }

    /// Takes over an open queue of TAP `name` that another process opened and configured with
    /// `options` (the privileged supervisor hands it over a Unix socket).
    public convenience init(adopting fd: Int32, name: String, ifindex: Int32, options: Options) {
        self.init(OwnedDescriptor(adopting: fd), name: name, ifindex: ifindex, options: options)
    }

    private init(_ queue: consuming OwnedDescriptor, name: String, ifindex: Int32, options: Options) {
        self.fileDescriptor = queue.rawValue
        self.descriptor = Mutex(queue)
        self.name = name
        self.ifindex = ifindex
        self.vnetHeaderSize = options.vnetHeaderSize
        var kept = options
        if !options.multiQueue { kept.namespace = nil }
        self.options = kept
    }

    /// Closes the fd now rather than at deinit; a device that is not persistent goes with its
    /// last queue, and this call waits while the kernel removes it (tens of milliseconds). Only
    /// once nothing reads or writes the fd any more; later calls do nothing.
    public func close() {
        descriptor.withLock { $0.take() }?.close()
    }

    /// Gives up the queue without closing it (it has been handed to another process, which now
    /// holds the device); nil once closed.
    public func relinquish() -> OwnedDescriptor? {
        descriptor.withLock { $0.take() }
    }

    /// Opens one more queue of a multi-queue device: another fd whose frames the kernel spreads
    /// by flow, for another shard to serve.
    public func openQueue() throws(LinkError) -> TAPDevice {
        let operation = "open TAP queue"
        guard options.multiQueue else {
            throw LinkError(
                .invalidArgument, operation: operation, subject: name, reason: "the device is not multi-queue")
        }
        let attach = { [name, options] () throws(LinkError) -> Int32 in
            try TAPDevice.attach(name: name, options: options, operation: operation).release()
        }
        let fd = if let ns = options.namespace { try ns.perform(attach) } else { try attach() }
        return TAPDevice(OwnedDescriptor(adopting: fd), name: name, ifindex: ifindex, options: options)
    }

    /// The virtio-net header size the kernel is using for this device (TUNGETVNETHDRSZ).
    public func currentVnetHeaderSize() throws(LinkError) -> Int {
        var size: Int32 = 0
        let rc = gw_tun_get_vnet_hdr_size(fileDescriptor, &size)
        if rc < 0 { throw LinkError(Errno(rawValue: -rc), operation: "read vnet header size", subject: name) }
        return Int(size)
    }

    // MARK: - Opening

    private static func tunFlags(_ options: Options) -> Int32 {
        var flags = Int32(GW_TUN_TAP | GW_TUN_VNET_HDR)
        if options.multiQueue { flags |= Int32(GW_TUN_MULTI_QUEUE) }
        return flags
    }

    /// TUNSETIFF alone, with the kernel's refusals turned into what they mean for a name.
    private static func attach(name: String, options: Options, operation: String) throws(LinkError)
        -> OwnedDescriptor
    {
        var chosen = [CChar](repeating: 0, count: Int(gw_ifnamsiz()))
        do {
            return try OwnedDescriptor.adopting(negatedErrno: gw_tun_create(name, tunFlags(options), &chosen))
        } catch .resourceBusy {
            throw LinkError(.nameTaken, operation: operation, subject: name, reason: "a TAP of that name is in use")
        } catch .invalidArgument where if_nametoindex(name) != 0 {
            // drivers/net/tun.c tun_set_iff: EINVAL when the name is taken by another kind of
            // device, or by a TAP opened with a different queue mode.
            throw LinkError(
                .nameTaken, operation: operation, subject: name,
                reason: "a device of that name exists and is not a TAP of the same queue mode")
        } catch {
            throw LinkError(error, operation: operation, subject: name)
        }
    }

    /// Attach, then configure in the order that never leaves a half-made device behind: the
    /// device persists only once everything else has succeeded.
    /// On a failure the queue closes as it goes out of scope, and a device that was never made
    /// persistent goes with it; on success its number is handed over.
    private static func openConfigured(name: String, options: Options, operation: String) throws(LinkError) -> (
        Int32, Int32
    ) {
        let queue = try attach(name: name, options: options, operation: operation)
        let fd = queue.rawValue
        func fail(_ rc: Int32, _ what: String) -> LinkError {
            LinkError(Errno(rawValue: -rc), operation: what, subject: name)
        }
        var rc = gw_tun_set_vnet_hdr_size(fd, Int32(options.vnetHeaderSize))
        if rc < 0 { throw fail(rc, "set vnet header size") }
        rc = gw_tun_set_offload(fd, options.offloads.rawValue)
        if rc < 0 { throw fail(rc, "set offloads") }
        if let uid = options.owner {
            rc = gw_tun_set_owner(fd, Int64(uid))
            if rc < 0 { throw fail(rc, "set TAP owner") }
        }
        if let gid = options.group {
            rc = gw_tun_set_group(fd, Int64(gid))
            if rc < 0 { throw fail(rc, "set TAP group") }
        }
        rc = gw_tun_set_persist(fd, options.persistent ? 1 : 0)
        if rc < 0 { throw fail(rc, "set TAP persistence") }
        let index = Int32(bitPattern: if_nametoindex(name))
        if index == 0 { throw LinkError(Errno.last, operation: "look up TAP index", subject: name) }
        return (queue.release(), index)
    }
}
