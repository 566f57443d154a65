// The counter descriptions that stats and /metrics are both rendered from: names unique and fit
// for Prometheus, help present, and a sandbox's stats carrying every one of them.
@testable import Gateway
@testable import NetStack
import Testing

struct CounterDescriptionTests {
    static func check<S>(_ list: [CounterDescription<S>]) {
        let names = list.map(\.name)
        #expect(Set(names).count == names.count, "duplicate names: \(names)")
        for c in list {
            #expect(c.name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }, "\(c.name)")
            #expect((c.kind == .counter) == c.name.hasSuffix("_total"), "\(c.name): counters end in _total, gauges do not")
            #expect(!c.help.isEmpty && c.help.hasSuffix("."))
        }
    }

    @Test func sandboxAndForwarderDescriptions() {
        Self.check(CounterDescription<SandboxCounterSource>.sandbox)
        Self.check(CounterDescription<DNSForwarder.Counters>.dnsForwarder)
    }

    @Test func valuesComeFromTheirSource() {
        var stack = StackCounters()
        stack.tcpTailProbes = 7
        var egress = EgressCounters()
        egress.tcpIdleResets = 3
        let source = SandboxCounterSource(stack: stack, egress: egress)
        let byName = Dictionary(uniqueKeysWithValues: CounterDescription<SandboxCounterSource>.sandbox.map { ($0.name, $0.value(source)) })
        #expect(byName["tcp_tail_loss_probes_total"] == 7)
        #expect(byName["egress_tcp_idle_resets_total"] == 3)
        var f = DNSForwarder.Counters()
        f.tcpRetries = 5
        #expect(CounterDescription<DNSForwarder.Counters>.dnsForwarder.first { $0.name == "tcp_retries_total" }?.value(f) == 5)
    }
}
