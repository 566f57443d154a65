// The libFuzzer entry that drives one Stack through a sequence of steps (StackScenario.swift) and
// traps when an invariant fails. Built plainly, it replays files given as arguments, printing how
// deep each got; `--write-seeds DIR` writes the seed corpus (Seeds.swift).
//
// Fuzzing build: Tools/fuzz.sh (as WireFuzz: -sanitize=fuzzer,address -parse-as-library -DFUZZING).
import FuzzDriver

func runStackInput(_ bytes: UnsafeRawBufferPointer) -> StackScenario.Stats {
    let scenario = StackScenario(bytes)
    scenario.run()
    return scenario.stats
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = runStackInput(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !FUZZING
func replayOrWriteSeeds(_ arguments: ArraySlice<String>) -> Int32 {
    if arguments.first == "--write-seeds", let directory = arguments.dropFirst().first {
        return writeSeeds(StackSeeds.all, to: directory)
    }
    return replayFuzzInputs(arguments, program: "StackFuzz") { bytes in
        let s = runStackInput(bytes)
        print("  \(s.steps) steps, \(s.established) established, \(s.deliveredBytes) bytes to the relay (\(s.directBytes) taken directly), "
              + "\(s.guestReceivedBytes) bytes to the guest, \(s.framesChecked) frames checked")
    }
}

/// A declaration, not a statement, for the same reason as WireFuzz's (see there).
let replayStatus: Int32 = replayOrWriteSeeds(CommandLine.arguments.dropFirst())
#else
@_cdecl("StackFuzz_main")
func stackFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc: argc, argv: argv) { data, size in
        guard let data else { return 0 }
        return fuzz(data, size)
    }
}
#endif
