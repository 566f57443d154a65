// Device naming: the project prefix, names that always fit IFNAMSIZ, the kernel's validity rule.
import Testing

@testable import Link

@Suite struct InterfaceNameTests {
    @Test func maximumLengthIsIFNAMSIZLessOne() {
        #expect(InterfaceName.maximumLength == 15)
    }

    @Test(arguments: [InterfaceName.Role.gatewayTAP, .bridge, .vmTAP, .veth])
    func uniqueNamesFitAndCarryThePrefix(role: InterfaceName.Role) throws {
        var seen = Set<String>()
        for _ in 0..<200 {
            let name = InterfaceName.unique(role)
            #expect(name.hasPrefix(role.prefix))
            #expect(name.hasPrefix(InterfaceName.projectPrefix))
            #expect(name.utf8.count <= InterfaceName.maximumLength)
            try InterfaceName.validateOwned(name, operation: "test")
            seen.insert(name)
        }
        #expect(seen.count == 200)
        // Asking for more digits than fit is clamped, never an overlong name.
        #expect(InterfaceName.unique(role, digits: 40).utf8.count == InterfaceName.maximumLength)
    }

    @Test func madeNamesAreStableAndFit() throws {
        #expect(InterfaceName.make(.gatewayTAP, id: "sbx42") == "gwt-sbx42")
        let long = "3f2b8c1e-9d4a-4e6b-a1c2-7f8e9d0c1b2a"
        let name = InterfaceName.make(.vmTAP, id: long)
        #expect(name == InterfaceName.make(.vmTAP, id: long))
        #expect(name.utf8.count == InterfaceName.maximumLength)
        #expect(name.hasPrefix("gwv-"))
        #expect(name != InterfaceName.make(.vmTAP, id: long + "x"))
        try InterfaceName.validateOwned(name, operation: "test")
        // Characters the kernel refuses are hashed away, not passed through.
        let odd = InterfaceName.make(.bridge, id: "a b/c:")
        try InterfaceName.validateOwned(odd, operation: "test")
        #expect(odd != "gwb-a b/c:")
    }

    @Test(arguments: ["", ".", "..", "gw/x", "gw:x", "gw x", "gw\tx", "gwt-0123456789ab"])
    func invalidNamesAreRefused(name: String) {
        #expect(throws: LinkError.self) { try InterfaceName.validate(name, operation: "test") }
    }

    @Test func tooLongIsItsOwnCode() {
        do {
            try InterfaceName.validate("gwt-0123456789ab", operation: "create TAP")
            Issue.record("no error")
        } catch {
            #expect(error.code == .nameTooLong)
            #expect(error.subject == "gwt-0123456789ab")
            #expect(error.operation == "create TAP")
        }
    }

    @Test func ownedNamesNeedTheProjectPrefix() {
        #expect(throws: LinkError.self) { try InterfaceName.validateOwned("eth0", operation: "test") }
        #expect(throws: Never.self) { try InterfaceName.validateOwned("gwb-x", operation: "test") }
        // Fifteen bytes is the most that fits.
        #expect(throws: Never.self) { try InterfaceName.validateOwned("gwt-0123456789a", operation: "test") }
    }
}
