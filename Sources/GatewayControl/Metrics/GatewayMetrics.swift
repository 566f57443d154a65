// What /metrics shows of a running gateway: per sandbox its bytes, frames, flows and drops by
// reason; per shard its sandbox count and busy polling. Read on demand (a scrape asks every shard once).
import Gateway

public enum GatewayMetrics {
    public static func render(_ gateway: Gateway, routes: [RouteView] = [], cluster: ClusterSync.Status? = nil) -> String {
        var p = PrometheusExposition()
        let sandboxes = gateway.list()

        p.family("gatewayd_sandboxes", .gauge, help: "Sandboxes attached.")
        p.sample("gatewayd_sandboxes", sandboxes.count)

        p.family("gatewayd_shard_sandboxes", .gauge, help: "Sandboxes placed on each shard.")
        var perShard = Array(repeating: 0, count: gateway.shardCount)
        for s in sandboxes where perShard.indices.contains(s.shard) { perShard[s.shard] += 1 }
        for (shard, n) in perShard.enumerated() { p.sample("gatewayd_shard_sandboxes", ["shard": String(shard)], n) }

        let polling = gateway.shardActivity()
        p.family("gatewayd_shard_wakeups_total", .counter, help: "Passes of a shard's loop that handled I/O.")
        for (shard, s) in polling.enumerated() { p.sample("gatewayd_shard_wakeups_total", ["shard": String(shard)], s.wakeups) }
        p.family(
            "gatewayd_shard_polled_wakeups_total", .counter,
            help: "I/O a shard found while busy polling, without sleeping (busy-poll-us).")
        for (shard, s) in polling.enumerated() {
            p.sample("gatewayd_shard_polled_wakeups_total", ["shard": String(shard)], s.polledWakeups)
        }
        p.family("gatewayd_shard_sleeps_total", .counter, help: "Times a busy-polling shard went to sleep for I/O.")
        for (shard, s) in polling.enumerated() { p.sample("gatewayd_shard_sleeps_total", ["shard": String(shard)], s.sleeps) }
        p.family(
            "gatewayd_shard_polls_skipped_total", .counter,
            help: "Bursts of I/O after which a shard slept at once: too few quiet spells ended within busy-poll-us.")
        for (shard, s) in polling.enumerated() {
            p.sample("gatewayd_shard_polls_skipped_total", ["shard": String(shard)], s.pollsSkipped)
        }
        p.family(
            "gatewayd_shard_busy_poll_hit_percent", .gauge,
            help: "Share of a shard's recent quiet spells that ended within busy-poll-us (it polls while >= busy-poll-hit-percent).")
        for (shard, s) in polling.enumerated() {
            p.sample("gatewayd_shard_busy_poll_hit_percent", ["shard": String(shard)], s.busyPollHitPercent)
        }
        p.family("gatewayd_shard_epoll_failures_total", .counter, help: "epoll_ctl calls that failed on a watched fd (a bug).")
        for (shard, s) in polling.enumerated() {
            p.sample("gatewayd_shard_epoll_failures_total", ["shard": String(shard)], s.epollFailures)
        }

        let pools = gateway.bufferPoolStats()
        p.family("gatewayd_shard_buffer_bytes", .gauge, help: "TCP buffer memory of a shard's pool; state: in_use, warm (free, resident), mapped.")
        for (shard, s) in pools.enumerated() {
            p.sample("gatewayd_shard_buffer_bytes", ["shard": String(shard), "state": "in_use"], s.inUseBytes)
            p.sample("gatewayd_shard_buffer_bytes", ["shard": String(shard), "state": "warm"], s.warmBytes)
            p.sample("gatewayd_shard_buffer_bytes", ["shard": String(shard), "state": "mapped"], s.mappedBytes)
        }
        p.family("gatewayd_shard_buffer_released_bytes_total", .counter, help: "Idle buffer memory given back to the system.")
        for (shard, s) in pools.enumerated() {
            p.sample("gatewayd_shard_buffer_released_bytes_total", ["shard": String(shard)], s.releasedBytesTotal)
        }
        p.family("gatewayd_shard_buffer_map_failures_total", .counter, help: "Buffer slabs the system refused to map.")
        for (shard, s) in pools.enumerated() { p.sample("gatewayd_shard_buffer_map_failures_total", ["shard": String(shard)], s.mapFailures) }
        p.family("gatewayd_memory_budget_reserved_bytes", .gauge, help: "TCP buffer memory reserved by all sandboxes, against the global budget.")
        p.sample("gatewayd_memory_budget_reserved_bytes", gateway.sharedMemoryBudget.reserved)
        p.family("gatewayd_memory_budget_bytes", .gauge, help: "The global TCP buffer memory budget.")
        p.sample("gatewayd_memory_budget_bytes", gateway.sharedMemoryBudget.limit)

        p.family("gatewayd_published_ports", .gauge, help: "Host ports published into sandboxes.")
        p.sample("gatewayd_published_ports", routes.count)

        let ledger = gateway.descriptorLedger
        p.family(
            "gatewayd_descriptors", .gauge,
            help: "File descriptors the data path holds (devices, flow sockets), may hold, and the process limit.")
        p.sample("gatewayd_descriptors", ["kind": "in_use"], ledger.inUse)
        p.sample("gatewayd_descriptors", ["kind": "data_path_limit"], ledger.capacity)
        p.sample("gatewayd_descriptors", ["kind": "process_limit"], ledger.processLimit)

        let stats = gateway.allStats()
        p.family("gatewayd_sandbox_bytes_total", .counter, help: "Frame bytes on the sandbox link; in: from the guest.")
        for s in stats {
            p.sample("gatewayd_sandbox_bytes_total", ["sandbox": s.id, "direction": "in"], s.bytesIn)
            p.sample("gatewayd_sandbox_bytes_total", ["sandbox": s.id, "direction": "out"], s.bytesOut)
        }
        p.family("gatewayd_sandbox_packets_total", .counter, help: "Frames on the sandbox link; in: from the guest.")
        for s in stats {
            p.sample("gatewayd_sandbox_packets_total", ["sandbox": s.id, "direction": "in"], s.framesIn)
            p.sample("gatewayd_sandbox_packets_total", ["sandbox": s.id, "direction": "out"], s.framesOut)
        }
        p.family("gatewayd_sandbox_host_bytes_total", .counter, help: "Payload bytes relayed over host sockets.")
        for s in stats {
            p.sample("gatewayd_sandbox_host_bytes_total", ["sandbox": s.id, "direction": "to_host"], s.bytesToHost)
            p.sample("gatewayd_sandbox_host_bytes_total", ["sandbox": s.id, "direction": "from_host"], s.bytesFromHost)
        }
        p.family("gatewayd_sandbox_tcp_flows", .gauge, help: "TCP flows open now.")
        for s in stats { p.sample("gatewayd_sandbox_tcp_flows", ["sandbox": s.id], s.tcpFlowsActive) }
        p.family("gatewayd_sandbox_tcp_flows_total", .counter, help: "TCP flows opened.")
        for s in stats { p.sample("gatewayd_sandbox_tcp_flows_total", ["sandbox": s.id], s.tcpFlowsTotal) }
        p.family("gatewayd_sandbox_udp_sessions", .gauge, help: "UDP sessions open now.")
        for s in stats { p.sample("gatewayd_sandbox_udp_sessions", ["sandbox": s.id], s.udpSessions) }
        p.family("gatewayd_sandbox_buffer_bytes", .gauge, help: "TCP buffer memory a sandbox holds now.")
        for s in stats { p.sample("gatewayd_sandbox_buffer_bytes", ["sandbox": s.id], s.memory.heldBytes) }
        p.family("gatewayd_sandbox_memory_reserved_bytes", .gauge, help: "TCP buffer memory a sandbox promised or holds, against its budget.")
        for s in stats { p.sample("gatewayd_sandbox_memory_reserved_bytes", ["sandbox": s.id], s.memory.reservedBytes) }
        p.family("gatewayd_sandbox_memory_budget_bytes", .gauge, help: "A sandbox's TCP buffer memory budget.")
        for s in stats { p.sample("gatewayd_sandbox_memory_budget_bytes", ["sandbox": s.id], s.memory.budgetBytes) }
        p.family("gatewayd_sandbox_memory_budget_shortfalls_total", .counter, help: "Windows or host reads the budget cut short.")
        for s in stats { p.sample("gatewayd_sandbox_memory_budget_shortfalls_total", ["sandbox": s.id], s.memory.budgetShortfalls) }
        p.family("gatewayd_sandbox_memory_at_budget_seconds_total", .counter, help: "Time a sandbox spent at its memory budget.")
        for s in stats { p.sample("gatewayd_sandbox_memory_at_budget_seconds_total", ["sandbox": s.id], s.memory.secondsAtBudget) }
        p.family("gatewayd_sandbox_drops_total", .counter, help: "Frames or flows dropped, by reason.")
        for s in stats {
            for (reason, n) in s.drops.sorted(by: { $0.key < $1.key }) {
                p.sample("gatewayd_sandbox_drops_total", ["sandbox": s.id, "reason": reason], n)
            }
        }
        p.family("gatewayd_sandbox_flows_total", .counter, help: "New flows decided, by verdict and (denied) reason.")
        for s in stats {
            p.sample("gatewayd_sandbox_flows_total", ["sandbox": s.id, "verdict": "allowed", "reason": ""], s.flows.allowed)
            for (reason, n) in s.flows.denied.sorted(by: { $0.key < $1.key }) {
                p.sample("gatewayd_sandbox_flows_total", ["sandbox": s.id, "verdict": "denied", "reason": reason], n)
            }
        }
        p.family("gatewayd_sandbox_dns_queries_total", .counter, help: "DNS queries answered, or refused by the gateway.")
        for s in stats {
            p.sample("gatewayd_sandbox_dns_queries_total", ["sandbox": s.id, "verdict": "allowed"], s.flows.dnsAnswered)
            p.sample("gatewayd_sandbox_dns_queries_total", ["sandbox": s.id, "verdict": "denied"], s.flows.dnsDenied)
        }
        p.family("gatewayd_sandbox_dns_rate_limited_total", .counter, help: "DNS queries refused past the sandbox's query rate.")
        for s in stats { p.sample("gatewayd_sandbox_dns_rate_limited_total", ["sandbox": s.id], s.dns.rateLimited) }
        p.family("gatewayd_sandbox_dns_pins", .gauge, help: "Addresses pinned for domain rules by the sandbox's DNS answers.")
        for s in stats { p.sample("gatewayd_sandbox_dns_pins", ["sandbox": s.id], s.dns.pins) }
        p.family("gatewayd_sandbox_rate_limited_seconds_total", .counter, help: "Time some flow waited for byte tokens, by direction.")
        for s in stats {
            let r = s.rateLimits
            for (direction, seconds) in [("to_host", r.secondsLimitedToHost), ("from_host", r.secondsLimitedFromHost)] {
                p.sample("gatewayd_sandbox_rate_limited_seconds_total", ["sandbox": s.id, "direction": direction], seconds)
            }
        }
        p.family("gatewayd_sandbox_rate_delayed_bytes_total", .counter, help: "Guest bytes held back in the stack for byte tokens.")
        for s in stats { p.sample("gatewayd_sandbox_rate_delayed_bytes_total", ["sandbox": s.id], s.rateLimits.bytesDelayed) }
        p.family("gatewayd_sandbox_rate_limit_drops_total", .counter, help: "Datagrams dropped and flows refused or reset by the sandbox's limits, by limit.")
        for s in stats {
            let r = s.rateLimits
            for (limit, n) in [("packet_rate", r.udpDropped), ("connection_rate", r.connectionsRefused), ("max_flows", r.flowsRefused), ("half_open", r.halfOpenResets)] {
                p.sample("gatewayd_sandbox_rate_limit_drops_total", ["sandbox": s.id, "limit": limit], n)
            }
        }
        for c in CounterDescription<SandboxCounterSource>.sandbox {
            let name = "gatewayd_sandbox_" + c.name
            p.family(name, c.kind == .counter ? .counter : .gauge, help: c.help)
            for s in stats { p.sample(name, ["sandbox": s.id], s.counters[c.name] ?? 0) }
        }
        let forwarders = gateway.dnsForwarderCounters()
        for c in CounterDescription<DNSForwarder.Counters>.dnsForwarder {
            let name = "gatewayd_dns_" + c.name
            p.family(name, c.kind == .counter ? .counter : .gauge, help: c.help)
            for (shard, f) in forwarders.enumerated() { p.sample(name, ["shard": String(shard)], c.value(f)) }
        }
        let log = gateway.flowLog.counters
        p.family("gatewayd_flow_log_events_total", .counter, help: "Flow log events written, or dropped at a full shard queue.")
        p.sample("gatewayd_flow_log_events_total", ["state": "written"], log.written)
        p.sample("gatewayd_flow_log_events_total", ["state": "dropped"], log.dropped)
        p.family("gatewayd_flow_log_write_failures_total", .counter, help: "Writes to the flow log file that failed.")
        p.sample("gatewayd_flow_log_write_failures_total", log.writeFailures)
        if let cluster {
            p.family("gatewayd_cluster_etcd_up", .gauge, help: "Whether etcd answers the cluster sync (1) or not (0).")
            p.sample("gatewayd_cluster_etcd_up", cluster.etcd == "connected" ? 1 : 0)
            p.family(
                "gatewayd_cluster_reconciles_total", .counter,
                help: "Full reconciliations with etcd: on start, on etcd's return, on a new lease.")
            p.sample("gatewayd_cluster_reconciles_total", cluster.reconciles ?? 0)
            p.family(
                "gatewayd_cluster_conflicts_total", .counter,
                help: "Keys of this node's sandboxes or routes found held by another node in etcd.")
            p.sample("gatewayd_cluster_conflicts_total", cluster.conflicts ?? 0)
        }
        return p.text
    }
}
