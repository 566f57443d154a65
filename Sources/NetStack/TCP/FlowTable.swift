// The stack's TCP flows: one entry per connection holding its key and the stack's bookkeeping
// for it, found by handle (an array slot) or by 4-tuple (one hash lookup).

/// One TCP flow as the stack holds it: the connection, the 4-tuple it answers to, and where it
/// stands in the stack's timer heap and queues.
final class FlowEntry {
    let id: TCPFlowID
    let key: FlowKey
    let connection: TCPConnection
    /// The deadline last pushed onto the stack's timer heap for this flow; nil once the heap let
    /// it go, so whatever comes next is pushed anew.
    var scheduledDeadline: UInt64?
    /// Counted against `maxTimeWait` (it stays counted until it leaves the table).
    var inTimeWait = false
    /// Queued to be looked at again when memory frees up.
    var waitingForMemory = false
    /// Queued for the ACKs and data that deferred input left pending.
    var hasDeferredOutput = false

    init(id: TCPFlowID, key: FlowKey, connection: TCPConnection) {
        self.id = id
        self.key = key
        self.connection = connection
    }
}

/// The flows of one stack, in reusable slots. A handle names a slot and the slot's generation, so
/// a handle the layer above kept after its flow went away never finds the flow that took the slot
/// next; looking one up is an array index, not a hash.
struct FlowTable {
    private struct Slot {
        var entry: FlowEntry?
        /// Bumped each time the slot is freed.
        var generation: UInt32 = 0
    }

    private var slots: [Slot] = []
    private var freeSlots: [Int] = []
    private var byKey: [FlowKey: TCPFlowID] = [:]
    /// Flows in the table.
    private(set) var count = 0

    subscript(id: TCPFlowID) -> FlowEntry? {
        let slot = id.slot
        guard slot < slots.count, let entry = slots[slot].entry, entry.id == id else { return nil }
        return entry
    }

    subscript(key: FlowKey) -> FlowEntry? {
        guard let id = byKey[key] else { return nil }
        return self[id]
    }

    func contains(_ key: FlowKey) -> Bool { byKey[key] != nil }

    /// Adds `connection` as `key`'s flow; `key` must not be in the table.
    mutating func insert(_ key: FlowKey, _ connection: TCPConnection) -> FlowEntry {
        precondition(byKey[key] == nil, "a flow for \(key) is already open")
        let slot: Int
        if let reused = freeSlots.popLast() {
            slot = reused
        } else {
            slot = slots.count
            slots.append(Slot())
        }
        let id = TCPFlowID(slot: slot, generation: slots[slot].generation)
        let entry = FlowEntry(id: id, key: key, connection: connection)
        slots[slot].entry = entry
        byKey[key] = id
        count += 1
        return entry
    }

    /// Takes the flow out; its handle finds nothing from now on.
    @discardableResult
    mutating func remove(_ id: TCPFlowID) -> FlowEntry? {
        guard let entry = self[id] else { return nil }
        let slot = id.slot
        slots[slot].entry = nil
        slots[slot].generation &+= 1
        freeSlots.append(slot)
        byKey[entry.key] = nil
        count -= 1
        return entry
    }

    /// Every flow, in slot order.
    var entries: some Sequence<FlowEntry> { slots.lazy.compactMap(\.entry) }
}
