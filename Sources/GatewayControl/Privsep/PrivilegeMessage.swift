// The messages between gatewayd's unprivileged worker and its privileged supervisor: one request,
// one reply (with a file descriptor beside it when one is handed over), JSON on a SOCK_SEQPACKET
// socket. The supervisor checks every field; nothing here is trusted on arrival.
import Foundation
import Gateway
import SystemPackage
import Wire

/// What the worker asks. Addresses and names travel as text and are parsed and checked again.
enum PrivilegeRequest: Codable, Sendable, Equatable {
    case openNamespaceLink(NamespaceLink)
    case createVMLink(VMLink)
    case removeVMLink(addressBlock: Int)
    case vmLinkSurvives(addressBlock: Int)
    case bindPort(address: String, port: UInt16, protocol: String)
    case openEchoSocket(ipv6: Bool)
    case openFlowLog(path: String)
    case sweepStaleDevices(keeping: [String])
    /// A shard thread of the worker's to take the configured `shard-nice`.
    case setThreadNice(thread: Int32, nice: Int32)
    /// The config file's text again, for a SIGHUP reload (the worker may not read it).
    case readConfig
    /// The worker serves its control socket: from now on its death means a restart.
    case ready

    struct NamespaceLink: Codable, Sendable, Equatable {
        var sandbox: String
        var namespace: String
        var device: String
        var addressBlock: Int
        var mtu: Int
        var guestMAC: String?
        var guestIPv4: String?
        var prefixLength: Int?
        var gatewayIPv4: String?
        /// `NamespaceIdentity` as text, on a restart.
        var expectedIdentity: String?
    }

    struct VMLink: Codable, Sendable, Equatable {
        var sandbox: String
        var addressBlock: Int
        var mtu: Int
        var owner: UInt32?
        var group: UInt32?
        var reuse: Bool
    }

    /// For the supervisor's log.
    var name: String {
        switch self {
        case .openNamespaceLink: "open-namespace-link"
        case .createVMLink: "create-vm-link"
        case .removeVMLink: "remove-vm-link"
        case .vmLinkSurvives: "vm-link-survives"
        case .bindPort: "bind-port"
        case .openEchoSocket: "open-echo-socket"
        case .openFlowLog: "open-flow-log"
        case .sweepStaleDevices: "sweep-stale-devices"
        case .setThreadNice: "set-thread-nice"
        case .readConfig: "read-config"
        case .ready: "ready"
        }
    }
}

extension PrivilegeRequest.NamespaceLink {
    init(_ r: NamespaceLinkRequest) {
        self.init(
            sandbox: r.sandbox, namespace: r.namespace, device: r.device, addressBlock: r.addressBlock, mtu: r.mtu,
            guestMAC: r.guestMAC?.description, guestIPv4: r.staticAddress?.guest.description,
            prefixLength: r.staticAddress?.prefixLength, gatewayIPv4: r.staticAddress?.gateway.description,
            expectedIdentity: r.expectedIdentity?.description)
    }
}

/// The supervisor's answer. `error` set: the request was refused or failed; the other fields
/// belong to the request that was made.
struct PrivilegeReply: Codable, Sendable, Equatable {
    var error: Failure?
    /// An opened TAP (the descriptor comes beside the message).
    var link: Link?
    var bind: Bind?
    var flag: Bool?
    var names: [String]?
    var text: String?

    struct Failure: Codable, Sendable, Equatable {
        /// `GatewayError.Code`'s number.
        var code: UInt8
        var message: String
        /// The errno beneath, when a system call said no.
        var errno: Int32?
    }

    struct Link: Codable, Sendable, Equatable {
        var device: String
        var ifindex: Int32
        var vnetHeaderSize: Int
        var offloads: UInt32
        var guestMAC: String?
        var warning: String?
        /// `NamespaceIdentity` as text, for a namespace link.
        var namespaceIdentity: String?
    }

    /// `PortAllocator.BindOutcome` (the socket, when bound, comes beside the message).
    struct Bind: Codable, Sendable, Equatable {
        var outcome: String
        var message: String?
    }

    static func failure(_ error: GatewayError) -> PrivilegeReply {
        let errno: Int32? =
            switch error.cause {
            case .system(let e): e.rawValue
            case .link(let l): l.systemError?.rawValue
            case nil: nil
            }
        return PrivilegeReply(error: Failure(code: error.code.rawValue, message: error.message, errno: errno))
    }
}

extension PrivilegeReply.Failure {
    var gatewayError: GatewayError {
        GatewayError(
            GatewayError.Code(rawValue: code), message, cause: errno.map { .system(Errno(rawValue: $0)) })
    }
}
