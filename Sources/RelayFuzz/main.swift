// The libFuzzer entry for the relays' state machines (egress, published ports, DNS over TCP): the
// first byte picks a machine, the rest is a sequence of its inputs; a broken invariant traps.
// Built plainly, it replays files given as arguments; `--write-seeds DIR` writes the seed corpus.
//
// The machines are internal to Gateway, so this target imports it @testable: a debug build (the
// fuzzing build is one) compiles Gateway with testing enabled. A release build of the package
// builds this target as a stub that says so.
//
// Fuzzing build: Tools/fuzz.sh (as WireFuzz: -sanitize=fuzzer,address -parse-as-library -DFUZZING).
import FuzzDriver

#if DEBUG
@testable import Gateway

/// Which machine an input drives. Append only: seeds start with these numbers.
enum RelayMachine: UInt8, CaseIterable {
    case egress, inbound, dnsSession
}

/// Runs one input; returns where the machine ended, for the replay's summary of the seeds.
@discardableResult
func runRelayInput(_ bytes: UnsafeRawBufferPointer) -> String {
    var input = FuzzInput(bytes)
    let machine = RelayMachine(rawValue: input.byte() % UInt8(RelayMachine.allCases.count))!
    var steps = 0
    switch machine {
    case .egress:
        var run = TCPRelayMachineRun(&input)
        while !input.isEmpty && steps < 1000 {
            run.step(&input)
            steps += 1
        }
        return "egress, \(steps) inputs, ends \(run.m.state)"
    case .inbound:
        var run = InboundMachineRun()
        while !input.isEmpty && steps < 1000 {
            run.step(&input)
            steps += 1
        }
        return "published port, \(steps) inputs, ends \(run.m.state)"
    case .dnsSession:
        var run = DNSSessionMachineRun(&input)
        while !input.isEmpty && steps < 1000 {
            run.step(&input)
            steps += 1
        }
        return "DNS session, \(steps) inputs, ends \(run.m.state), FIN sent: \(run.finSent)"
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    runRelayInput(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !FUZZING
func replayOrWriteSeeds(_ arguments: ArraySlice<String>) -> Int32 {
    if arguments.first == "--write-seeds", let directory = arguments.dropFirst().first {
        return writeSeeds(RelaySeeds.all, to: directory)
    }
    return replayFuzzInputs(arguments, program: "RelayFuzz") { print("  " + runRelayInput($0)) }
}

/// A declaration, not a statement, for the same reason as WireFuzz's (see there).
let replayStatus: Int32 = replayOrWriteSeeds(CommandLine.arguments.dropFirst())
#else
@_cdecl("RelayFuzz_main")
func relayFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc: argc, argv: argv) { data, size in
        guard let data else { return 0 }
        return fuzz(data, size)
    }
}
#endif
#else
/// Without testing enabled the machines cannot be reached.
let replayStatus: Int32 = {
    print("RelayFuzz needs a debug build (it imports Gateway @testable): swift build --product RelayFuzz")
    return 2
}()
#endif
