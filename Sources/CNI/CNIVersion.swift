// The CNI protocol versions this plugin speaks, and where their result formats part: 0.3.x and
// 0.4.0 tag each IP with its family, 1.0.0 drops the tag, 1.1.0 adds an interface's MTU.

public struct CNIVersion: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var patch: Int

    public init(_ major: Int, _ minor: Int, _ patch: Int) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// "1.0.0"; nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 3, let major = parts[0], let minor = parts[1], let patch = parts[2],
            major >= 0, minor >= 0, patch >= 0
        else { return nil }
        self.init(major, minor, patch)
    }

    public static func < (a: CNIVersion, b: CNIVersion) -> Bool {
        (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch)
    }

    public var description: String { "\(major).\(minor).\(patch)" }

    /// 0.1.0 and 0.2.0 carried addresses in another shape (`ip4`, `ip6`); no runtime still
    /// in use asks for them.
    public static let supported = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].compactMap(CNIVersion.init)
    public static let latest = CNIVersion(1, 1, 0)

    /// CHECK came with 0.4.0; GC and STATUS with 1.1.0.
    public static let check = CNIVersion(0, 4, 0)
    public static let garbageCollection = CNIVersion(1, 1, 0)

    /// Results of versions before 1.0.0 say "4" or "6" beside each address.
    public var tagsAddressFamily: Bool { self < CNIVersion(1, 0, 0) }
    public var reportsInterfaceMTU: Bool { self >= CNIVersion(1, 1, 0) }
}
