// What /metrics shows of a running gateway: per sandbox its bytes, frames, flows and drops by
// reason; per shard its sandbox count and busy polling. Read on demand (a scrape asks every shard once).
import Gateway

public enum GatewayMetrics {
    public static func render(_ gateway: Gateway, routes: [RouteView] = []) -> String {
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

        p.family("gatewayd_published_ports", .gauge, help: "Host ports published into sandboxes.")
        p.sample("gatewayd_published_ports", routes.count)

        let ledger = gateway.descriptorLedger
        p.family(
            "gatewayd_descriptors", .gauge,
            help: "File descriptors the data path holds (devices, flow sockets), may hold, and the process limit.")
        p.sample("gatewayd_descriptors", ["kind": "in_use"], ledger.inUse)
        p.sample("gatewayd_descriptors", ["kind": "data_path_limit"], ledger.capacity)
        p.sample("gatewayd_descriptors", ["kind": "process_limit"], ledger.processLimit)

        // A sandbox detached between list() and stats() is simply skipped.
        let stats = sandboxes.compactMap { try? gateway.stats($0.id) }
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
        p.family("gatewayd_sandbox_drops_total", .counter, help: "Frames or flows dropped, by reason.")
        for s in stats {
            for (reason, n) in s.drops.sorted(by: { $0.key < $1.key }) {
                p.sample("gatewayd_sandbox_drops_total", ["sandbox": s.id, "reason": reason], n)
            }
        }
        return p.text
    }
}
