// OwnedDescriptor closes what it owns exactly once: on close(), or when dropped, and never after
// its number was handed on or a second time through an emptied holder.
import SystemPackage
import Testing

@testable import Link

#if canImport(Glibc)
import Glibc
#endif

@Suite struct OwnedDescriptorTests {
    /// fcntl(F_GETFD) succeeds exactly while `fd` is open.
    private func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }

    private func openNull() throws -> OwnedDescriptor {
        try OwnedDescriptor.adopting(result: open("/dev/null", O_RDONLY | O_CLOEXEC))
    }

    @Test func closeClosesTheDescriptor() throws {
        let owner = try openNull()
        let fd = owner.rawValue
        #expect(isOpen(fd))
        owner.close()
        #expect(!isOpen(fd))
        #expect(errno == EBADF)
    }

    @Test func droppingTheOwnerClosesIt() throws {
        var fd: Int32 = -1
        do {
            let owner = try openNull()
            fd = owner.rawValue
            #expect(isOpen(fd))
        }
        #expect(!isOpen(fd))
    }

    @Test func releaseHandsTheNumberOnWithoutClosing() throws {
        let fd = try openNull().release()
        defer { close(fd) }
        #expect(isOpen(fd))
    }

    /// The holder pattern the relays use: after `take()?.close()` the holder is empty, so closing
    /// again does nothing, even once the kernel has given the same number to another file.
    @Test func aSecondCloseThroughAnEmptiedHolderTouchesNothing() throws {
        var held: OwnedDescriptor? = try openNull()
        let fd = held?.rawValue ?? -1
        held.take()?.close()
        let emptied = held == nil
        #expect(emptied)
        let reused = try openNull()
        #expect(reused.rawValue == fd, "the lowest free number comes back")
        held.take()?.close()
        #expect(isOpen(reused.rawValue))
    }

    @Test func aFailedCallIsItsTypedErrno() {
        #expect(throws: Errno.noSuchFileOrDirectory) {
            _ = try OwnedDescriptor.adopting(result: open("/nonexistent/gatewayd-test", O_RDONLY))
        }
        #expect(throws: Errno.permissionDenied) {
            _ = try OwnedDescriptor.adopting(negatedErrno: -EACCES)
        }
    }
}
