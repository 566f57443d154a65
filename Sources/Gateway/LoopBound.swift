// A value one shard's loop owns, carried through Sendable closures (the control plane's tasks)
// to that loop and checked there: touching it from any other thread traps in debug builds.

/// Holds a value that only `loop`'s thread may use. The wrapper crosses threads freely; the
/// value inside does not: `value` asserts it is read or changed on the loop's thread, so a
/// task that forgot to hop to the shard fails in tests instead of racing the data path.
public struct LoopBound<Value>: @unchecked Sendable {
    // Sound: the value is reached only through `value`, whose accessors assert they run on
    // `loop`'s thread, the one thread that uses it; the wrapper itself only carries it there.
    /// The loop whose thread owns the value.
    public let loop: EventLoop
    private var storage: Value

    /// Binds `value` to `loop`; call on that loop's thread (where the value was made).
    public init(_ value: Value, loop: EventLoop) {
        loop.assertInLoop()
        self.loop = loop
        storage = value
    }

    /// The value; on the loop's thread only.
    public var value: Value {
        get {
            loop.assertInLoop()
            return storage
        }
        _modify {
            loop.assertInLoop()
            yield &storage
        }
    }
}
