// The worker's allow-list as data: every name exists here, nothing the supervisor alone does is on
// it, and libseccomp builds it into BPF (without installing it: these tests run in the test process).
import Confinement
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct SyscallFilterTests {
    @Test func everyNameIsASystemCallHere() {
        for rule in SyscallFilter.workerRules {
            #expect(SyscallFilter.number(of: rule.name) != nil, "\(rule.name)")
        }
    }
}
