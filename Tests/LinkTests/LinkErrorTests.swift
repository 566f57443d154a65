// The link layer's error text names the operation and the device.
import SystemPackage
import Testing

@testable import Link

#if canImport(Glibc)
import Glibc
#endif

@Test func linkErrorNamesDeviceAndOperation() {
    let e = LinkError(.noSuchDevice, operation: "set MTU", subject: "gw-missing0", reason: "No such device")
    #expect(e.description == "set MTU 'gw-missing0': No such device")
}

@Test func linkErrorFromAnErrnoKeepsItTyped() {
    let e = LinkError(errno: EBUSY, operation: "create TAP", subject: "gw-busy0")
    #expect(e.code == .nameTaken)
    #expect(e.systemError == .resourceBusy)
    #expect(e.description == "create TAP 'gw-busy0': \(String(cString: strerror(EBUSY)))")
    #expect(LinkError(.netlink, operation: "set MTU", subject: "gw-x0", reason: "Object not found").systemError == nil)
}
