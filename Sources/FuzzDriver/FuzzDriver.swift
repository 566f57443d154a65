// What every libFuzzer executable here shares: handing control to libFuzzer's driver in a fuzzing
// build, and replaying saved inputs (crashes, the seed corpus) through the same entry otherwise.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One input in, 0 out: the shape libFuzzer calls.
public typealias FuzzEntry = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

/// The bytes of the file at `path`, or nil when it cannot be read.
public func readFuzzInput(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if n == 0 { break }
        bytes += chunk[0..<n]
    }
    return bytes
}

/// Replays each file through `run`, printing `describe`'s line for each. Exit status 0 when
/// every input ran, 1 when a file could not be read, 2 without arguments; a failed check traps.
public func replayFuzzInputs(
    _ paths: ArraySlice<String>, program: String, describe: ([UInt8]) -> String = { "\($0.count) bytes" },
    run: (UnsafeRawBufferPointer) -> Void
) -> Int32 {
    if paths.isEmpty {
        print("usage: \(program) FILE...   (replays each file through the fuzz entry)")
        exit(2)
    }
    var count = 0
    for path in paths {
        guard let bytes = readFuzzInput(path) else {
            print("cannot open \(path)")
            exit(1)
        }
        print("\(path): \(describe(bytes))")
        bytes.withUnsafeBytes { run($0) }
        count += 1
    }
    print("replayed \(count) inputs without a crash")
    return 0
}

/// Writes each seed to `directory/name` (the corpus a target keeps in the repository).
public func writeSeeds(_ seeds: [(name: String, bytes: [UInt8])], to directory: String) -> Int32 {
    for seed in seeds {
        let path = directory + "/" + seed.name
        guard let file = fopen(path, "wb") else {
            print("cannot write \(path)")
            return 1
        }
        _ = seed.bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
        print("\(path): \(seed.bytes.count) bytes")
    }
    return 0
}

#if FUZZING
/// libFuzzer's entry for programs that bring their own main (LLVM 11 and later).
@_extern(c, "LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: FuzzEntry
) -> CInt

/// Hands the process to libFuzzer, which calls `entry` with each input. SwiftPM links an
/// executable's `main` to `<Module>_main`; under -parse-as-library nothing defines that, so each
/// fuzz executable defines it and calls this.
public func runLibFuzzer(
    argc: CInt, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, entry: FuzzEntry
) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments, entry)
}
#endif
