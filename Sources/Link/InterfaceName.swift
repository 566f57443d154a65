// Names of the network devices the gateway creates: the project prefix, short role prefixes,
// unique names that fit IFNAMSIZ, and the kernel's own validity rule checked before any call.
import CGatewayShims

/// Naming for every device the gateway creates. All of them start with ``projectPrefix`` so a
/// crashed run's leftovers can be found and swept (see `NetlinkSocket.sweepStaleDevices`).
public enum InterfaceName {
    /// The prefix of every device name the gateway creates.
    public static let projectPrefix = "gw"

    /// The longest valid name in bytes: IFNAMSIZ less the terminating NUL (15 on Linux).
    public static let maximumLength = Int(gw_ifnamsiz()) - 1

    /// What a device is for, written as the start of its name.
    public struct Role: Hashable, Sendable {
        public let prefix: String
        public init(prefix: String) { self.prefix = prefix }

        /// The gateway's own end of a sandbox link (read and written by a shard).
        public static let gatewayTAP = Role(prefix: "gwt-")
        /// A per-sandbox bridge joining a gateway TAP to a VM TAP.
        public static let bridge = Role(prefix: "gwb-")
        /// The TAP a VM monitor opens by name (QEMU `ifname=`, Firecracker `host_dev_name`).
        public static let vmTAP = Role(prefix: "gwv-")
        /// Either end of a veth pair.
        public static let veth = Role(prefix: "gwe-")
    }

    /// A name for `id` (a sandbox ID, say) that is the same every time, so a restarted daemon finds
    /// its devices again. Short IDs made of `[a-z0-9-]` are used as they are; anything else is
    /// replaced by a base-36 hash that fills the room left after the prefix.
    public static func make(_ role: Role, id: some StringProtocol) -> String {
        let room = max(0, maximumLength - role.prefix.utf8.count)
        let plain = id.utf8.allSatisfy { isNameByte($0) || $0 == UInt8(ascii: "-") }
        if plain, !id.isEmpty, id.utf8.count <= room {
            return role.prefix + String(id)
        }
        // FNV-1a (64-bit): stable across runs and platforms, unlike Hasher.
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in id.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return role.prefix + base36(hash, digits: room)
    }

    /// A fresh random name for `role`: `digits` random base-36 characters (clamped to the room
    /// IFNAMSIZ leaves). Eight digits give 41 bits, so two live devices never draw the same name
    /// in practice; creating one still fails with `.nameTaken` if it ever happens.
    public static func unique(_ role: Role, digits: Int = 8) -> String {
        let room = max(0, maximumLength - role.prefix.utf8.count)
        return role.prefix + base36(UInt64.random(in: .min ... .max), digits: min(max(digits, 1), room))
    }

    /// Checks `name` against the kernel's rule (net/core/dev.c `dev_valid_name`): 1 to 15 bytes,
    /// not "." or "..", no '/', ':' or white space.
    /// - Throws: `.nameTooLong` or `.invalidArgument`, naming `operation` and the device.
    public static func validate(_ name: String, operation: String) throws(LinkError) {
        let bytes = name.utf8
        if bytes.count > maximumLength {
            throw LinkError(
                .nameTooLong, operation: operation, subject: name,
                reason: "device names are at most \(maximumLength) bytes (IFNAMSIZ \(maximumLength + 1))")
        }
        if bytes.isEmpty || name == "." || name == ".." {
            throw LinkError(.invalidArgument, operation: operation, subject: name, reason: "not a device name")
        }
        for b in bytes where b == UInt8(ascii: "/") || b == UInt8(ascii: ":") || b == 0 || isSpace(b) {
            throw LinkError(
                .invalidArgument, operation: operation, subject: name,
                reason: "device names may not contain '/', ':' or white space")
        }
    }

    /// As ``validate(_:operation:)``, and also requires the project prefix: the gateway only
    /// creates devices it can later recognise as its own.
    public static func validateOwned(_ name: String, operation: String) throws(LinkError) {
        try validate(name, operation: operation)
        guard name.hasPrefix(projectPrefix) else {
            throw LinkError(
                .invalidArgument, operation: operation, subject: name,
                reason: "devices the gateway creates must be named \(projectPrefix)…")
        }
    }

    private static func isNameByte(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
    }

    private static func isSpace(_ b: UInt8) -> Bool {
        b == 0x20 || (b >= 0x09 && b <= 0x0D)
    }

    private static func base36(_ value: UInt64, digits: Int) -> String {
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)
        var v = value
        var out = [UInt8](repeating: UInt8(ascii: "0"), count: digits)
        var i = digits - 1
        while i >= 0 {
            out[i] = alphabet[Int(v % 36)]
            v /= 36
            i -= 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
