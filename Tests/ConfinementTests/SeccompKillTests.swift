// Reading the kernel's audit record of a seccomp kill: parsing records, and finding one by pid in
// a log (a file here; the probe tests read the real /dev/kmsg).
import Confinement
import Foundation
import Testing

@Suite struct SeccompKillTests {
    static let record =
        "12,1873,18982430441,-;audit: type=1326 audit(1796672080.855:1): auid=4294967295 uid=65534 gid=65534 "
        + "ses=4294967295 pid=26301 comm=\"confinement-pro\" exe=\"/tmp/confinement-probe\" sig=31 "
        + "arch=c000003e syscall=101 compat=0 ip=0x7f33859cf829 code=0x80000000"

    @Test func parsesTheAuditRecord() throws {
        let kill = try #require(SeccompKill(kernelLogRecord: Substring(Self.record)))
        #expect(kill.pid == 26301)
        #expect(kill.syscall == 101)
        #expect(kill.name == "ptrace")
        #expect(kill.architecture == 0xc000_003e)
        #expect(kill.command == "confinement-pro")
        #expect("\(kill)".contains("101 (ptrace)"))
    }

    @Test(arguments: [
        "6,1874,18982430500,-;gwv-10 (unregistering): left promiscuous mode",
        "5,1875,18982430600,-;audit: type=1400 audit(1796672080.9:2): apparmor=\"DENIED\" pid=12",
        "5,1876,18982430700,-;audit: type=1326 audit(1796672080.9:3): pid=12 comm=\"x\"",
    ])
    func ignoresOtherRecords(_ line: String) {
        #expect(SeccompKill(kernelLogRecord: Substring(line)) == nil)
    }

    @Test func findsTheNewestRecordOfThePid() throws {
        let path = NSTemporaryDirectory() + "kmsg-\(getpid())"
        let older = Self.record.replacingOccurrences(of: "syscall=101", with: "syscall=165")
        let other = Self.record.replacingOccurrences(of: "pid=26301", with: "pid=26302")
            .replacingOccurrences(of: "syscall=101", with: "syscall=308")
        try [older, "6,1,1,-;something else", Self.record, other].joined(separator: "\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let kill = try #require(try SeccompKill.find(pid: 26301, timeout: .zero, log: path))
        #expect(kill.syscall == 101)
        #expect(try SeccompKill.find(pid: 26302, timeout: .zero, log: path)?.name == "setns")
    }

    @Test func givesUpAfterTheTimeout() throws {
        let path = NSTemporaryDirectory() + "kmsg-empty-\(getpid())"
        try "6,1,1,-;nothing here\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let start = ContinuousClock.now
        #expect(try SeccompKill.find(pid: 1, timeout: .milliseconds(200), log: path) == nil)
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(200) && waited < .seconds(2))
    }

    @Test func aLogItCannotOpenIsAnError() {
        #expect {
            try SeccompKill.find(pid: 1, log: "/nonexistent/kmsg")
        } throws: { error in
            (error as? ConfinementError)?.step == .readKernelLog
        }
    }
}
