// Runs one synchronous piece of work on a short-lived thread of its own. Entering a network
// namespace (setns) or leaving one (unshare) changes the calling thread for good; doing it on a
// thread that ends with the work means no pooled thread is ever left in the wrong namespace.

#if canImport(Glibc)
import Glibc
#endif

enum IsolatedThread {
    /// Runs `work` on a new thread and waits for it. The caller blocks, so `work` may capture and
    /// return values that are not Sendable: only one thread touches them at a time.
    static func run<R>(operation: String, _ work: () throws(LinkError) -> R) throws(LinkError) -> R {
        let outcome: Result<R, LinkError> = withoutActuallyEscaping(work) { escapable in
            var result: Result<R, LinkError> = .failure(
                LinkError(.system, operation: operation, subject: "thread", reason: "the thread did not run"))
            let box = Unmanaged.passRetained(Thunk { result = Result { () throws(LinkError) -> R in try escapable() } })
            var thread = pthread_t()
            let rc = pthread_create(
                &thread, nil,
                { raw in
                    guard let raw else { return nil }
                    Unmanaged<Thunk>.fromOpaque(raw).takeRetainedValue().body()
                    return nil
                }, box.toOpaque())
            if rc != 0 {
                box.release()
                return .failure(LinkError(errno: rc, operation: operation, subject: "thread"))
            }
            pthread_join(thread, nil)
            return result
        }
        return try outcome.get()
    }

    private final class Thunk {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
}
