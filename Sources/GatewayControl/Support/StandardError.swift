// Writing a message to standard error in one write(2), usable from any thread under strict
// concurrency (C's `stderr` global is not).
#if canImport(Glibc)
    import Glibc
#endif

public func printError(_ text: String) {
    var line = Array(text.utf8)
    if line.last != 0x0A { line.append(0x0A) }
    line.withUnsafeBytes { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
