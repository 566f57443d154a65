// The link layer's error text names the operation and the device.
import Testing
@testable import Link

@Test func linkErrorNamesDeviceAndOperation() {
    let e = LinkError(.noSuchDevice, operation: "set MTU", subject: "gw-missing0", reason: "No such device")
    #expect(e.description == "set MTU 'gw-missing0': No such device")
}
