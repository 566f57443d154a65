// The benchmark's error: a message that says which step failed and, where it can, what to do.

struct BenchError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}
