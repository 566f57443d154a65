// Attach with a chosen address block, as a restart asks for the one a sandbox had; and one
// sandbox per namespace. Both are refused with their own codes before anything is made.
import Foundation
import Gateway
import GatewayTestSupport
import Testing
import Wire

@Suite(.enabled(if: TestHost.canCreateDevices, "needs root and /dev/net/tun"))
struct AddressBlockTests {
    @Test func attachTakesTheBlockItAsksForOrSaysWhoHoldsIt() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let plan = fx.gateway.configuration.addresses
        let (seven, _) = try fx.attach("blk7-\(fx.scratch.tag)") { $0.addressBlock = 7 }
        #expect(seven.addressBlock == 7)
        #expect(seven.gatewayIPv4 == plan.assignment(index: 7).gatewayIPv4.description)
        #expect(seven.gatewayMAC == plan.assignment(index: 7).gatewayMAC.description)
        // Without a wish, the first free block: 0, not after 7.
        let (first, _) = try fx.attach()
        #expect(first.addressBlock == 0)

        let taken = #expect(throws: GatewayError.self) {
            try fx.attach("again-\(fx.scratch.tag)") { $0.addressBlock = 7 }
        }
        #expect(taken?.code == .sandboxExists, "\(String(describing: taken))")
        #expect(taken?.message.contains("address block 7") == true && taken?.message.contains(seven.id) == true)
        let outside = #expect(throws: GatewayError.self) {
            try fx.attach("far-\(fx.scratch.tag)") { $0.addressBlock = plan.capacity }
        }
        #expect(outside?.code == .invalidArgument && outside?.message.contains("outside the pool") == true)
        #expect(fx.gateway.list().count == 2)
        // The block comes free with the detach.
        try fx.gateway.detach(seven.id)
        let (again, _) = try fx.attach("blk7b-\(fx.scratch.tag)") { $0.addressBlock = 7 }
        #expect(again.gatewayIPv4 == seven.gatewayIPv4)
    }

    @Test func aSecondSandboxInANamespaceIsRefusedAsDeviceExists() throws {
        let fx = try GatewayFixture()
        defer { fx.tearDown() }
        let (info, ns) = try fx.attach()
        let e = #expect(throws: GatewayError.self) {
            try fx.gateway.attach(SandboxSpec(id: "second-\(fx.scratch.tag)", mode: .netns(ns)))
        }
        #expect(e?.code == .deviceExists)
        #expect(e?.message.contains("namespace '\(ns)' already has sandbox '\(info.id)'") == true, "\(String(describing: e))")
        #expect(fx.gateway.list().map(\.id) == [info.id])
    }
}
