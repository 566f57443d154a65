// Parsing /proc/PID/status and the refusals dropPrivileges makes before it changes anything, which
// are safe to see in the test process itself.
import Confinement
import Foundation
import Testing

@Suite struct ProcessStatusTests {
    static let confined = """
        Name:\tconfinement-pro
        Umask:\t0022
        State:\tR (running)
        Uid:\t65534\t65534\t65534\t65534
        Gid:\t65534\t65534\t65534\t65534
        Groups:\t65534 
        Threads:\t1
        CapInh:\t0000000000000000
        CapPrm:\t0000000000000000
        CapEff:\t0000000000000000
        CapBnd:\t0000000000000000
        CapAmb:\t0000000000000000
        NoNewPrivs:\t1
        Seccomp:\t2
        Seccomp_filters:\t1
        """

    @Test func parsesTheConfinedProbe() throws {
        let status = try #require(ProcessStatus(text: Self.confined))
        #expect(status.uids == [65534, 65534, 65534, 65534])
        #expect(status.groups == [65534])
        #expect(status.capBnd == 0 && status.capEff == 0)
        #expect(status.noNewPrivs == 1)
        #expect(status.seccomp == 2)
        #expect(status.threads == 1)
    }

    @Test func aMissingLineIsNil() {
        let withoutBounding = Self.confined.split(separator: "\n").filter { !$0.hasPrefix("CapBnd") }
        #expect(ProcessStatus(text: withoutBounding.joined(separator: "\n")) == nil)
    }

    @Test func readsItsOwn() throws {
        let status = try #require(ProcessStatus.read())
        #expect(status.uids.count == 4)
        #expect(status.uids[0] == getuid())
    }

    @Test func anUnknownUserIsNamed() {
        #expect {
            try Confinement.account(for: "no-such-user-gatewayd")
        } throws: { error in
            (error as? ConfinementError)?.step == .resolveUser && "\(error)".contains("no-such-user-gatewayd")
        }
    }

    @Test func resolvesNobodyByNameAndNumber() throws {
        let byName = try Confinement.account(for: "nobody")
        #expect(byName.uid == 65534)
        #expect(try Confinement.account(for: "65534") == byName)
    }

    /// The test process runs many threads, so the drop must refuse before touching anything.
    @Test func refusesWhileThreadsRun() throws {
        let before = try #require(ProcessStatus.read())
        try #require(before.threads > 1, "the test process has one thread: the drop would go through")
        #expect {
            try Confinement.dropPrivileges(to: "nobody")
        } throws: { error in
            (error as? ConfinementError)?.step == .threadsRunning
        }
        #expect(ProcessStatus.read()?.uids == before.uids)
        #expect(ProcessStatus.read()?.capBnd == before.capBnd)
    }
}
