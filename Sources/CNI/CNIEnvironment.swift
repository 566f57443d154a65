// The CNI_* variables a runtime sets for each call (SPEC.md, Section 2 "Parameters"), read and
// checked against what each command requires; an error names the variable.
import Link

public struct CNIEnvironment: Sendable, Hashable {
    public enum Command: String, Sendable, Hashable {
        case add = "ADD"
        case del = "DEL"
        case check = "CHECK"
        case gc = "GC"
        case status = "STATUS"
        case version = "VERSION"
    }

    public var command: Command
    public var containerID: String?
    /// A path to the namespace: /run/netns/NAME, /proc/PID/ns/net, or any bind mount of one.
    public var netns: String?
    public var ifname: String?
    /// CNI_ARGS: `KEY=VALUE;KEY=VALUE`, by key.
    public var args: [String: String]
    public var path: [String]

    public init(_ variables: [String: String]) throws(CNIError) {
        func value(_ name: String) -> String? {
            guard let v = variables[name], !v.isEmpty else { return nil }
            return v
        }
        guard let text = value("CNI_COMMAND") else {
            throw CNIError(.invalidEnvironment, "CNI_COMMAND is not set: a runtime sets it to ADD, DEL, CHECK, GC, STATUS or VERSION")
        }
        guard let command = Command(rawValue: text) else {
            throw CNIError(.invalidEnvironment, "CNI_COMMAND '\(text)' is not one of ADD, DEL, CHECK, GC, STATUS, VERSION")
        }
        self.command = command
        containerID = value("CNI_CONTAINERID")
        netns = value("CNI_NETNS")
        ifname = value("CNI_IFNAME")
        args = try Self.parseArgs(value("CNI_ARGS") ?? "")
        path = (value("CNI_PATH") ?? "").split(separator: ":").map(String.init)
    }

    /// Splits CNI_ARGS. Keys this plugin does not know are kept and ignored: runtimes pass their
    /// own (K8S_POD_NAME, IgnoreUnknown) to every plugin of a chain.
    static func parseArgs(_ text: String) throws(CNIError) -> [String: String] {
        var args: [String: String] = [:]
        for pair in text.split(separator: ";") {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw CNIError(.invalidEnvironment, "CNI_ARGS has '\(pair)', which is not KEY=VALUE")
            }
            args[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        return args
    }

    /// The attachment's three parameters, which ADD and CHECK need all of and DEL needs but the
    /// namespace of (SPEC.md, Section 2, each command's "Required environment parameters").
    public func attachment() throws(CNIError) -> Attachment {
        guard let containerID else {
            throw CNIError(.invalidEnvironment, "CNI_CONTAINERID is not set: \(command.rawValue) needs the container's ID")
        }
        guard Self.isValidContainerID(containerID) else {
            throw CNIError(
                .invalidEnvironment,
                "CNI_CONTAINERID '\(containerID)' is not valid: it starts with a letter or digit, then letters, digits, '_', '.' or '-'")
        }
        guard let ifname else {
            throw CNIError(.invalidEnvironment, "CNI_IFNAME is not set: \(command.rawValue) needs the interface's name")
        }
        guard Self.isValidInterfaceName(ifname) else {
            throw CNIError(
                .invalidEnvironment,
                "CNI_IFNAME '\(ifname)' is not a Linux interface name: 1-15 bytes, no '/', ':' or white space")
        }
        if command != .del { _ = try namespacePath() }
        return Attachment(containerID: containerID, ifname: ifname)
    }

    /// CNI_NETNS, which ADD and CHECK require.
    public func namespacePath() throws(CNIError) -> String {
        guard let netns else {
            throw CNIError(.invalidEnvironment, "CNI_NETNS is not set: \(command.rawValue) needs the namespace's path")
        }
        guard netns.hasPrefix("/") else {
            throw CNIError(.invalidEnvironment, "CNI_NETNS '\(netns)' is not an absolute path to a network namespace")
        }
        return netns
    }

    /// SPEC.md, Section 3 "Attachment Parameters".
    static func isValidContainerID(_ id: String) -> Bool {
        guard let first = id.unicodeScalars.first, first.isASCII, first.properties.isAlphabetic || ("0"..."9").contains(first)
        else { return false }
        return id.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0))
        }
    }

    /// What the kernel's dev_valid_name accepts, as gatewayd checks it.
    static func isValidInterfaceName(_ name: String) -> Bool {
        (try? InterfaceName.validate(name, operation: "check")) != nil
    }
}

/// One attachment of a container to a network: the pair a runtime names it by (SPEC.md,
/// Section 3) and the GC command lists.
public struct Attachment: Codable, Sendable, Hashable {
    public var containerID: String
    public var ifname: String

    public init(containerID: String, ifname: String) {
        self.containerID = containerID
        self.ifname = ifname
    }
}
