// One sandbox's side of the flow log: turns its egress decisions, flow endings and DNS answers
// into events on its shard's queue, and counts verdicts by reason for stats and metrics. Used on
// the sandbox's shard only.
import NetStack
import Wire

final class FlowAudit {
    struct Counters: Sendable, Equatable {
        var allowedFlows = 0
        /// Denied flows by reason; a denial by a rule counts under `rule`.
        var deniedFlows: [String: Int] = [:]
        var dnsAnswered = 0
        var dnsDenied = 0
    }

    let sandbox: String
    let queue: FlowLog.Queue
    /// The sandbox's live policy, for the text of the rule that decided.
    let pinning: DomainPinning
    private(set) var counters = Counters()

    init(sandbox: String, queue: FlowLog.Queue, pinning: DomainPinning) {
        self.sandbox = sandbox
        self.queue = queue
        self.pinning = pinning
    }

    /// A new flow's verdict. `overLimit` names the limit that refused a flow the policy allowed.
    func decided(_ key: FlowKey, _ proto: PolicyProtocol, _ decision: PolicyDecision, overLimit: FlowEvent.Reason? = nil) {
        var e = FlowEvent(.flow, sandbox: sandbox, proto: proto)
        e.guest = key.guestAddress
        e.guestPort = proto == .icmp ? nil : key.guestPort
        e.destination = key.remoteAddress
        e.destinationPort = proto == .icmp ? nil : key.remotePort
        e.name = decision.name
        if let i = decision.ruleIndex { e.rule = pinning.ruleText(i) }
        if decision.isAllowed && overLimit == nil {
            e.verdict = .allowed
            counters.allowedFlows += 1
        } else {
            e.verdict = .denied
            let reason: FlowEvent.Reason? =
                overLimit ?? (decision.ruleIndex != nil ? nil : decision.unpinnedDomainRule != nil ? .noPin : .policyDefault)
            e.reason = reason
            counters.deniedFlows[reason?.rawValue ?? "rule", default: 0] += 1
        }
        queue.post(e)
    }

    /// A flow's end: bytes each way, its life, and how it ended.
    func ended(
        _ key: FlowKey, _ proto: PolicyProtocol, bytesOut: UInt64, bytesIn: UInt64, openedAt: UInt64, now: UInt64,
        _ ending: FlowEvent.Ending, inbound: Bool = false
    ) {
        var e = FlowEvent(.end, sandbox: sandbox, proto: proto)
        e.inbound = inbound
        e.guest = key.guestAddress
        e.guestPort = key.guestPort
        e.destination = key.remoteAddress
        e.destinationPort = key.remotePort
        e.bytesOut = bytesOut
        e.bytesIn = bytesIn
        e.duration = now >= openedAt ? now - openedAt : 0
        e.ending = ending
        queue.post(e)
    }

    /// A published port's client: let in to the guest's `guestPort`, or refused for `reason`.
    func inbound(client: IPAddress, port clientPort: UInt16, guestPort: UInt16, refused reason: FlowEvent.Reason?) {
        var e = FlowEvent(.flow, sandbox: sandbox, proto: .tcp)
        e.inbound = true
        e.destination = client
        e.destinationPort = clientPort
        e.guestPort = guestPort
        e.verdict = reason == nil ? .allowed : .denied
        e.reason = reason
        if let reason {
            counters.deniedFlows[reason.rawValue, default: 0] += 1
        } else {
            counters.allowedFlows += 1
        }
        queue.post(e)
    }

    /// A DNS query's outcome: answered (with its code and addresses) or refused by the gateway.
    func dns(name: String, type: UInt16, responseCode: UInt16, answers: [IPAddress], denied: FlowEvent.Reason?) {
        var e = FlowEvent(.dns, sandbox: sandbox, proto: .udp)
        e.name = name
        e.queryType = type
        e.responseCode = responseCode
        if !answers.isEmpty { e.answers = answers }
        e.verdict = denied == nil ? .allowed : .denied
        e.reason = denied
        if denied == nil { counters.dnsAnswered += 1 } else { counters.dnsDenied += 1 }
        queue.post(e)
    }
}
