// Descriptor accounting: a sandbox's budget refuses (and counts) beyond its limit and beyond the
// process-wide ledger, slots come back when they go, and the ledger's figures follow the open
// files limit; the device reaper closes retired TAPs and reports which namespaces are clear.
@testable import Gateway
import GatewayTestSupport
import Link
import Testing

#if canImport(Glibc)
    import Glibc
#endif

struct DescriptorBudgetTests {
    @Test func budgetRefusesBeyondItsLimitAndCounts() {
        let budget = DescriptorBudget(ledger: nil, limit: 3)
        var slots = (0..<3).compactMap { _ in budget.take() }
        #expect(slots.count == 3 && budget.inUse == 3)
        #expect(budget.take() == nil && budget.take() == nil)
        #expect(budget.refused == 2 && budget.inUse == 3)
        slots.removeLast()
        #expect(budget.inUse == 2)
        #expect(budget.take() != nil)  // taken and given back at once
        #expect(budget.inUse == 2 && budget.refused == 2)
        slots.removeAll()
        #expect(budget.inUse == 0)
    }

    /// Two sandboxes share the ledger: one that takes all it may leaves the rest to the other,
    /// and the ledger refuses both once it is empty.
    @Test func ledgerIsSharedAndBounded() {
        var limits = DescriptorLimits()
        limits.perSandbox = 10
        let ledger = DescriptorLedger(limits: limits)
        #expect(ledger.capacity == max(0, ledger.processLimit - 64 - ledger.openAtStart))
        #expect(ledger.perSandbox == min(10, ledger.capacity))
        // Most of the ledger taken elsewhere (devices): 15 left.
        var devices = 0
        while ledger.capacity - ledger.inUse > 15, ledger.take() { devices += 1 }
        let a = DescriptorBudget(ledger: ledger, limit: ledger.perSandbox)
        let b = DescriptorBudget(ledger: ledger, limit: ledger.perSandbox)
        var held = (0..<20).compactMap { _ in a.take() }
        #expect(held.count == 10 && a.refused == 10)
        held += (0..<20).compactMap { _ in b.take() }
        #expect(held.count == 15 && b.refused == 15 && b.inUse == 5)
        held.removeAll()
        #expect(ledger.inUse == devices && a.inUse == 0 && b.inUse == 0)
        for _ in 0..<devices { ledger.give() }
        #expect(ledger.inUse == 0)
    }

    @Test func defaultBudgetIsAnEighthWithAFloor() {
        let ledger = DescriptorLedger(limits: DescriptorLimits())
        #expect(ledger.perSandbox == min(ledger.capacity, max(64, ledger.capacity / 8)))
        #expect(ledger.openAtStart > 0 && ledger.openAtStart < ledger.processLimit)
    }
}

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct DeviceReaperTests {
    /// Retired TAPs are closed (their devices gone) on the reaper's threads; the namespace is
    /// reported busy until its device is gone, and `closed` runs once per device.
    @Test func closesRetiredDevicesAndClearsTheirNamespace() throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let ns = try scratch.namespace()
        let nsName = try #require(ns.name)
        let reaper = DeviceReaper(maxWorkers: 4)
        let closed = Semaphore()
        var names: [String] = []
        for i in 0..<8 {
            var options = TAPDevice.Options()
            options.namespace = ns
            let name = scratch.deviceName("t", "r\(i)")
            let tap = try TAPDevice(name: name, options: options)
            names.append(name)
            reaper.retire(tap, namespace: nsName) { closed.signal() }
        }
        reaper.waitUntilClosed(namespace: nsName)
        #expect(!reaper.isClosing(namespace: nsName))
        for _ in 0..<8 { closed.wait() }
        reaper.drain()
        #expect(reaper.pendingCount == 0)
        let left = try NetlinkSocket(in: ns).links().map(\.name)
        #expect(names.allSatisfy { !left.contains($0) })
    }
}
