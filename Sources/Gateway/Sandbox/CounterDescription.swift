// One description per counter the gateway keeps beyond the core traffic figures: its name, kind
// and help, and where its value comes from. `stats` (its `counters`) and /metrics are both
// rendered from these lists, so a counter is described once and shown in both.
import NetStack
import Wire

public struct CounterDescription<Source>: Sendable {
    public enum Kind: String, Sendable {
        case counter
        case gauge
    }

    /// The key in `stats` and the metric name's tail (gatewayd_sandbox_NAME, gatewayd_dns_NAME).
    public let name: String
    public let kind: Kind
    public let help: String
    public let value: @Sendable (Source) -> Int

    init(_ name: String, _ kind: Kind, _ help: String, _ value: @escaping @Sendable (Source) -> Int) {
        self.name = name
        self.kind = kind
        self.help = help
        self.value = value
    }

    init(_ name: String, _ help: String, _ value: @escaping @Sendable (Source) -> Int) {
        self.init(name, .counter, help, value)
    }
}

/// What a sandbox's counters are read from: its stack's, its egress relay's and its device
/// reader's policing.
public struct SandboxCounterSource: Sendable {
    public var stack: StackCounters
    public var egress: EgressCounters
    var link = FramePolicer.Counters()
}

extension CounterDescription where Source == SandboxCounterSource {
    /// A sandbox's counters, in `stats`'s `counters` and as gatewayd_sandbox_NAME{sandbox}.
    public static var sandbox: [CounterDescription] {
        [
            .init("tcp_connections_opened_total", "TCP connections the stack opened (both directions).") { $0.stack.tcpConnectionsOpened },
            .init("tcp_resets_sent_total", "RSTs the stack sent to the guest.") { $0.stack.tcpResetsSent },
            .init("tcp_refused_over_limit_total", "Guest SYNs refused because the flow table was full.") { $0.stack.tcpRefusedOverLimit },
            .init("tcp_retransmit_timeouts_total", "Retransmission timeouts toward the guest (closed connections).") { $0.stack.tcpRetransmitTimeouts },
            .init("tcp_fast_recoveries_total", "Fast recoveries toward the guest (closed connections).") { $0.stack.tcpFastRecoveries },
            .init("tcp_tail_loss_probes_total", "Tail loss probes toward the guest (closed connections).") { $0.stack.tcpTailProbes },
            .init("tcp_retransmitted_segments_total", "Segments resent to the guest (closed connections).") { $0.stack.tcpRetransmittedSegments },
            .init("tcp_bytes_direct_total", "Guest TCP bytes written to their host socket as they arrived, never buffered.") { $0.stack.tcpBytesTakenDirectly },
            .init("icmp_errors_sent_total", "ICMP errors sent to the guest (time exceeded, unreachable).") { $0.stack.icmpErrorsSent },
            .init("arp_replies_total", "ARP replies to the guest.") { $0.stack.arpReplies },
            .init("echo_replies_local_total", "Echo replies the gateway itself gave.") { $0.stack.echoReplies },
            .init("egress_tcp_connected_total", "Egress TCP flows whose upstream accepted.") { $0.egress.tcpConnected },
            .init("egress_tcp_active", .gauge, "Egress TCP flows connected now.") { $0.egress.tcpActive },
            .init("egress_tcp_denied_total", "Egress TCP flows refused (policy, limits).") { $0.egress.tcpDenied },
            .init("egress_tcp_name_denied_total", "Domain-rule flows reset after their first bytes named no allowed, pinned name.") { $0.egress.tcpNameDenied },
            .init("egress_tcp_connect_failed_total", "Egress TCP flows whose upstream refused or did not answer.") { $0.egress.tcpConnectFailed },
            .init("egress_tcp_idle_resets_total", "Egress TCP flows reset after the idle timeout.") { $0.egress.tcpIdleResets },
            .init("egress_published_port_denied_total", "Flows refused for reaching a port the gateway publishes.") { $0.egress.publishedPortDenied },
            .init("egress_udp_sessions_total", "Egress UDP sessions opened.") { $0.egress.udpSessions },
            .init("egress_udp_denied_total", "Egress UDP datagrams refused by the policy.") { $0.egress.udpDenied },
            .init("egress_udp_datagrams_out_total", "UDP datagrams sent to upstreams.") { $0.egress.udpDatagramsOut },
            .init("egress_udp_datagrams_in_total", "UDP datagrams received from upstreams.") { $0.egress.udpDatagramsIn },
            .init("egress_echo_requests_total", "Echo requests relayed beyond the gateway.") { $0.egress.echoRequests },
            .init("egress_echo_replies_total", "Echo replies relayed back.") { $0.egress.echoReplies },
            .init("egress_echo_denied_total", "Echo requests refused.") { $0.egress.echoDenied },
            .init("dns_tcp_sessions_total", "DNS-over-TCP connections the gateway answered.") { $0.egress.dnsTCPSessions },
            .init("dns_tcp_queries_total", "Queries read from DNS-over-TCP connections.") { $0.egress.dnsTCPQueries },
            .init("dns_tcp_idle_closes_total", "DNS-over-TCP connections closed idle.") { $0.egress.dnsTCPIdleCloses },
            .init("frames_suspect_total", "Guest frames that were not plain flow traffic (ARP, NDP, DHCP, DNS, ICMP, SYNs, fragments, junk).") { $0.link.suspect },
            .init("frames_policed_total", "Suspect guest frames dropped unparsed past the sandbox's suspect-frame-rate.") { $0.link.droppedTotal },
            .init("frames_policed_spoofed_total", "Of those, frames whose source MAC was not the guest's.") { $0.link.dropped[FrameTriage.Kind.spoofedSource.rawValue] },
            .init("frames_policed_not_for_us_total", "Of those, frames to neither the gateway's MAC nor a group address.") { $0.link.dropped[FrameTriage.Kind.notForUs.rawValue] },
            .init("frames_policed_fragments_total", "Of those, IPv4 and IPv6 fragments.") { $0.link.dropped[FrameTriage.Kind.fragment.rawValue] },
            .init("frames_policed_syn_total", "Of those, TCP SYNs.") { $0.link.dropped[FrameTriage.Kind.connectionRequest.rawValue] },
            .init("device_pauses_total", "Times a flooding guest's device was left unread (the kernel drops at its queue meanwhile).") { $0.link.pauses },
            .init("device_paused_ms_total", "Milliseconds a flooding guest's device was left unread.") { Int($0.link.pausedNanoseconds / 1_000_000) },
        ]
    }
}

extension CounterDescription where Source == DNSForwarder.Counters {
    /// A shard's DNS forwarder counters, as gatewayd_dns_NAME{shard}.
    public static var dnsForwarder: [CounterDescription] {
        [
            .init("queries_total", "Queries handed to the forwarder.") { $0.queries },
            .init("local_answers_total", "Queries for the gateway's own names, answered locally.") { $0.localAnswers },
            .init("denied_total", "Queries answered NXDOMAIN by a sandbox's DNS policy.") { $0.denied },
            .init("rate_limited_total", "Queries answered REFUSED past a sandbox's query rate.") { $0.rateLimited },
            .init("forwarded_total", "Queries sent upstream.") { $0.forwarded },
            .init("answered_total", "Upstream answers relayed to guests.") { $0.answered },
            .init("upstream_timeouts_total", "Upstream attempts that got no answer in time.") { $0.upstreamTimeouts },
            .init("servfail_total", "SERVFAIL replies the forwarder made itself.") { $0.servfail },
            .init("over_capacity_total", "Queries refused because the outstanding caps were reached.") { $0.overCapacity },
            .init("truncated_total", "Replies cut to the header and question with TC set.") { $0.truncated },
            .init("format_errors_total", "Malformed queries answered FORMERR.") { $0.formatErrors },
            .init("unsupported_total", "Queries answered NOTIMP or BADVERS.") { $0.unsupported },
            .init("dropped_total", "Input dropped without a reply.") { $0.dropped },
            .init("unmatched_responses_total", "Upstream datagrams that matched no outstanding query.") { $0.unmatchedResponses },
            .init("send_failures_total", "Upstream sends that failed at once.") { $0.sendFailures },
            .init("tcp_retries_total", "Truncated answers asked again over TCP.") { $0.tcpRetries },
            .init("tcp_retry_failures_total", "Retries over TCP that failed.") { $0.tcpRetryFailures },
        ]
    }
}
