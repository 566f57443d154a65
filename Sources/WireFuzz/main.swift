// The libFuzzer entry for every Wire parser: the first input byte picks a parser from the table
// below, the rest of the input is fed to it. Built plainly, it replays files given as arguments.
//
// Fuzzing build (Tools/fuzz.sh does this):
//   swift build -c debug --product WireFuzz --scratch-path .build-fuzz \
//     -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING
// FUZZING removes the replay `main` below so that libFuzzer's own `main` links.
import FuzzDriver

/// One parser under fuzz: a name for logs and a function that must not crash on any input.
struct FuzzTarget: Sendable {
    let name: StaticString
    let run: @Sendable (UnsafeRawBufferPointer) -> Void
}

// ──────────────────────────────────────────────────────────────────────────────────────────────
// THE PARSER TABLE. Adding a parser is one line here. Append only: seed files in
// Tools/fuzz-corpus start with the index of the parser they are for.
// ──────────────────────────────────────────────────────────────────────────────────────────────
let fuzzTargets: [FuzzTarget] = [
    FuzzTarget(name: "mac-text", run: FuzzCases.macText),  // 0
    FuzzTarget(name: "ipv4-text", run: FuzzCases.ipv4Text),  // 1
    FuzzTarget(name: "ipv6-text", run: FuzzCases.ipv6Text),  // 2
    FuzzTarget(name: "checksum", run: FuzzCases.checksum),  // 3
    FuzzTarget(name: "dhcp", run: FuzzCases.dhcp),  // 4
    FuzzTarget(name: "dns", run: FuzzCases.dns),  // 5
    FuzzTarget(name: "dns-name", run: FuzzCases.dnsName),  // 6
    FuzzTarget(name: "dns-text", run: FuzzCases.dnsText),  // 7
    FuzzTarget(name: "dhcp-domain-search", run: FuzzCases.domainSearch),  // 8
    FuzzTarget(name: "ethernet", run: FuzzCases.ethernet),  // 9
    FuzzTarget(name: "arp", run: FuzzCases.arp),  // 10
    FuzzTarget(name: "ipv4", run: FuzzCases.ipv4),  // 11
    FuzzTarget(name: "ipv6", run: FuzzCases.ipv6),  // 12
    FuzzTarget(name: "udp", run: FuzzCases.udp),  // 13
    FuzzTarget(name: "virtio-net", run: FuzzCases.virtio),  // 14
    FuzzTarget(name: "tcp", run: FuzzCases.tcp),  // 15
    FuzzTarget(name: "icmp-ndp", run: FuzzCases.icmp),  // 16
    FuzzTarget(name: "stack-frame", run: FuzzCases.stackFrame),  // 17
]

/// Feeds one input to the parser its first byte selects.
func runFuzzInput(_ bytes: UnsafeRawBufferPointer) {
    guard let selector = bytes.first else { return }
    let target = fuzzTargets[Int(selector) % fuzzTargets.count]
    target.run(UnsafeRawBufferPointer(rebasing: bytes[1...]))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    runFuzzInput(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if !FUZZING
/// The program when built without the fuzzer: replays the files given as arguments. A
/// declaration, not a statement: an inactive `#if` block must still parse under
/// -parse-as-library, which rejects top-level statements, while in main.swift globals are
/// initialised in order at start-up, so this line runs.
let replayStatus: Int32 = replayFuzzInputs(
    CommandLine.arguments.dropFirst(), program: "WireFuzz",
    describe: { bytes in
        let selector = bytes.first.map { Int($0) % fuzzTargets.count }
        return "\(bytes.count) bytes → \(selector.map { "\(fuzzTargets[$0].name)" } ?? "(empty)")"
    },
    run: runFuzzInput)
#else
@_cdecl("WireFuzz_main")
func wireFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc: argc, argv: argv) { data, size in
        guard let data else { return 0 }
        return fuzz(data, size)
    }
}
#endif
