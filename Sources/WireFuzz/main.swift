// The libFuzzer entry for every Wire parser: the first input byte picks a parser from the table
// below, the rest of the input is fed to it. Built plainly, it replays files given as arguments.
//
// Fuzzing build (Tools/fuzz-wire.sh does this):
//   swift build -c debug --product WireFuzz --scratch-path .build-fuzz \
//     -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING
// FUZZING removes the replay `main` below so that libFuzzer's own `main` links.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
/// Replays inputs (crash files, the corpus) through the same function the fuzzer calls. Exit
/// status 0 when every input ran, 1 when a file could not be read, 2 without arguments; a
/// failed check traps.
func replay(_ paths: ArraySlice<String>) -> Int32 {
    if paths.isEmpty {
        print("usage: WireFuzz FILE...   (replays each file through the fuzz entry)")
        exit(2)
    }
    var count = 0
    for path in paths {
        guard let file = fopen(path, "rb") else {
            print("cannot open \(path)")
            exit(1)
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        fclose(file)
        let selector = bytes.first.map { Int($0) % fuzzTargets.count }
        print("\(path): \(bytes.count) bytes → \(selector.map { "\(fuzzTargets[$0].name)" } ?? "(empty)")")
        bytes.withUnsafeBytes { runFuzzInput($0) }
        count += 1
    }
    print("replayed \(count) inputs without a crash")
    return 0
}

/// The program when built without the fuzzer. A declaration, not a statement: an inactive
/// `#if` block must still parse under -parse-as-library, which rejects top-level statements,
/// while in main.swift globals are initialised in order at start-up, so this line runs.
let replayStatus: Int32 = replay(CommandLine.arguments.dropFirst())
#else
/// libFuzzer's entry for programs that bring their own main (LLVM 11 and later).
@_extern(c, "LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links an executable's `main` to `<Module>_main` (so that tests can link it); under
/// -parse-as-library nothing defines that, so it is defined here and hands over to libFuzzer.
@_cdecl("WireFuzz_main")
func wireFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in
        guard let data else { return 0 }
        return fuzz(data, size)
    }
}
#endif
