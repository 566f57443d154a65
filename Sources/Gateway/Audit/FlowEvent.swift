// One entry of the flow log: a flow's verdict when it opens, its totals when it ends, or a DNS
// query's answer. Made on the shard with typed values (no formatting on the data path) and
// turned into a `FlowRecord` (the JSON form) by the log's writer.
import Wire

#if canImport(Glibc)
import Glibc
#endif

public struct FlowEvent: Sendable {
    public enum Kind: String, Sendable, Codable {
        /// A new flow was decided.
        case flow
        /// A flow ended: bytes, duration and how.
        case end
        /// A DNS query was answered or refused.
        case dns
    }

    public enum Verdict: String, Sendable, Codable {
        case allowed
        case denied
    }

    /// Why a flow or query was denied when no rule's text says it all.
    public enum Reason: String, Sendable, Codable {
        /// The policy's default denied it.
        case policyDefault = "default"
        /// A domain rule would have allowed it, but the sandbox never resolved this address
        /// through the gateway (or the answer lapsed).
        case noPin = "no pin"
        /// The TLS SNI or HTTP Host named no allowed name pinned to this address.
        case nameMismatch = "name mismatch"
        /// The first bytes were neither TLS nor HTTP, so no name could be checked.
        case unidentified
        /// The sandbox's rate or flow limits.
        case rateLimit = "rate limit"
        /// The sandbox's relay, session or descriptor budget.
        case budget
        /// Under `dns = "allowed-names"`, no allowing rule names it.
        case nameNotAllowed = "name not allowed"
        /// The name is in the policy's or the gateway's denied names.
        case deniedName = "denied name"
        /// A client of a published port that the sandbox's ingress rules refused.
        case ingressRule = "ingress rule"
        /// The flow would reach a host port the gateway publishes (another sandbox's or this
        /// one's) and no `sandbox:` rule allows it.
        case publishedPort = "published port"
    }

    /// How a flow ended.
    public enum Ending: String, Sendable, Codable {
        /// FIN both ways.
        case fin
        /// The guest reset it.
        case guestReset = "rst guest"
        /// The guest stopped answering (retransmissions ran out).
        case guestTimeout = "guest timeout"
        /// The destination reset it, or its socket failed.
        case upstreamReset = "rst upstream"
        /// Nothing moved for the idle timeout.
        case idle = "idle timeout"
        /// The destination did not accept the connection.
        case connectFailed = "connect failed"
        /// The sandbox was detached, or its policy changed to one that denies the flow.
        case closedByGateway = "closed by gateway"
        /// The guest got its SYN-ACK and did not complete the handshake within the half-open timeout.
        case halfOpen = "half-open timeout"
    }

    public var kind: Kind
    /// A published port's client coming in (`destination` is then the client); nil: egress.
    public var inbound = false
    /// Wall-clock time, nanoseconds since the Unix epoch.
    public var time: UInt64
    public var sandbox: String
    public var proto: PolicyProtocol
    public var guest: IPAddress?
    public var guestPort: UInt16?
    public var destination: IPAddress?
    public var destinationPort: UInt16?
    /// The name the flow was allowed or denied under (DNS pin, SNI or Host), or the query's name.
    public var name: String?
    public var verdict: Verdict?
    /// The text of the rule that decided.
    public var rule: String?
    public var reason: Reason?
    /// For `end`: bytes guest → destination and back, and the flow's life in nanoseconds.
    public var bytesOut: UInt64?
    public var bytesIn: UInt64?
    public var duration: UInt64?
    public var ending: Ending?
    /// For `dns`: the query type, the response code and the answer's addresses.
    public var queryType: UInt16?
    public var responseCode: UInt16?
    public var answers: [IPAddress]?

    public init(_ kind: Kind, sandbox: String, proto: PolicyProtocol, time: UInt64 = FlowEvent.wallClock()) {
        self.kind = kind
        self.sandbox = sandbox
        self.proto = proto
        self.time = time
    }

    /// Nanoseconds since the Unix epoch (CLOCK_REALTIME_COARSE: a log needs milliseconds, and the
    /// coarse clock costs no more than reading memory).
    public static func wallClock() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// The JSON form.
    public var record: FlowRecord {
        FlowRecord(
            time: FlowRecord.timestamp(time), event: kind, direction: inbound ? "ingress" : nil, sandbox: sandbox,
            protocol: proto.rawValue,
            guest: guest.map { FlowRecord.endpoint($0, guestPort) },
            destination: destination.map { FlowRecord.endpoint($0, destinationPort) },
            name: name, verdict: verdict, rule: rule, reason: reason, bytesOut: bytesOut, bytesIn: bytesIn,
            durationMs: duration.map { Double($0 / 1000) / 1000 }, ending: ending,
            queryType: queryType.map { DNSRecordType(rawValue: $0).description },
            responseCode: responseCode.map { DNSResponseCode(rawValue: $0).description },
            answers: answers?.map(\.description))
    }
}

/// A flow log entry as JSON carries it (one line of the log file, one element of the API's
/// answer); absent fields are left out.
public struct FlowRecord: Sendable, Codable, Hashable {
    /// RFC 3339, UTC, milliseconds.
    public var time: String
    public var event: FlowEvent.Kind
    /// "ingress" for a published port's client (its address is `destination`); absent: egress.
    public var direction: String?
    public var sandbox: String
    public var `protocol`: String
    public var guest: String?
    public var destination: String?
    public var name: String?
    public var verdict: FlowEvent.Verdict?
    public var rule: String?
    public var reason: FlowEvent.Reason?
    public var bytesOut: UInt64?
    public var bytesIn: UInt64?
    public var durationMs: Double?
    public var ending: FlowEvent.Ending?
    public var queryType: String?
    public var responseCode: String?
    public var answers: [String]?

    static func endpoint(_ address: IPAddress, _ port: UInt16?) -> String {
        guard let port else { return address.description }
        if case .v6 = address { return "[\(address)]:\(port)" }
        return "\(address):\(port)"
    }

    static func timestamp(_ ns: UInt64) -> String {
        var seconds = time_t(ns / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        let ms = Int32(ns / 1_000_000 % 1000)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(ms, 3))Z"
    }
}

extension FlowRecord {
    /// The record as one line of JSON (keys in the order `JSONEncoder`'s `.sortedKeys` gives),
    /// written here rather than through Foundation's encoder, which the data-path modules avoid.
    public func jsonLine() -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        func key(_ k: String) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            Self.appendString(k, to: &out)
            out.append(UInt8(ascii: ":"))
        }
        func field(_ k: String, _ v: String?) {
            guard let v else { return }
            key(k)
            Self.appendString(v, to: &out)
        }
        func number(_ k: String, _ v: String?) {
            guard let v else { return }
            key(k)
            out += Array(v.utf8)
        }
        if let answers {
            key("answers")
            out.append(UInt8(ascii: "["))
            for (i, a) in answers.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.appendString(a, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        number("bytesIn", bytesIn.map { String($0) })
        number("bytesOut", bytesOut.map { String($0) })
        field("destination", destination)
        field("direction", direction)
        number("durationMs", durationMs.map { String($0) })
        field("ending", ending?.rawValue)
        field("event", event.rawValue)
        field("guest", guest)
        field("name", name)
        field("protocol", `protocol`)
        field("queryType", queryType)
        field("reason", reason?.rawValue)
        field("responseCode", responseCode)
        field("rule", rule)
        field("sandbox", sandbox)
        field("time", time)
        field("verdict", verdict?.rawValue)
        out += [UInt8(ascii: "}"), 0x0A]
        return out
    }

    /// A JSON string (RFC 8259 §7): quotes, backslashes and control characters escaped.
    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8) + [hex[Int(b >> 4)], hex[Int(b & 0xF)]]
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
