// The difference between what a node should have in etcd (its desired state: its node record,
// sandboxes and routes) and what etcd holds, as guarded writes. No I/O: `ClusterSync` carries the
// steps out; the unit tests check the plans.

/// A key this node wrote and believes etcd still holds: the value, and the key's create revision
/// (which guards the next write, so a key another node took meanwhile is never overwritten).
struct StoredKey: Hashable, Sendable {
    var value: [UInt8]
    var createRevision: Int64
}

struct ClusterPlan: Hashable, Sendable {
    enum Step: Hashable, Sendable {
        /// Put `value` while the key's create revision is `createRevision` (0: while it is absent).
        case put(key: String, value: [UInt8], createRevision: Int64)
        /// Delete the key while its create revision is `createRevision`.
        case delete(key: String, createRevision: Int64)

        var key: String {
            switch self {
            case .put(let key, _, _), .delete(let key, _): key
            }
        }
    }

    var steps: [Step] = []
    /// Keys etcd already holds as desired, under this node's lease.
    var kept: [String: StoredKey] = [:]
    /// Desired keys another node holds, by key: that node's name. They are left alone.
    var conflicts: [String: String] = [:]

    /// Between full reconciliations: the writes that bring etcd from `stored` (what this node
    /// last wrote) to `desired`, looking only at `keys` (those that changed; nil: all). Keys known
    /// to be held elsewhere are skipped until the next full reconciliation looks again.
    static func changes(
        desired: [String: [UInt8]], stored: [String: StoredKey], heldElsewhere: Set<String> = [],
        among keys: Set<String>? = nil
    ) -> ClusterPlan {
        var plan = ClusterPlan()
        let looked = keys ?? Set(desired.keys).union(stored.keys)
        for key in looked.sorted() where !heldElsewhere.contains(key) {
            switch (desired[key], stored[key]) {
            case (let value?, let s?) where s.value != value:
                plan.steps.append(.put(key: key, value: value, createRevision: s.createRevision))
            case (let value?, nil):
                plan.steps.append(.put(key: key, value: value, createRevision: 0))
            case (nil, let s?):
                plan.steps.append(.delete(key: key, createRevision: s.createRevision))
            default:
                break
            }
        }
        return plan
    }

    /// After etcd's return, a new lease or a start: `observed` is every key etcd holds under the
    /// prefix. Puts what is missing or differs (or sits on another lease, which may be a dead
    /// process's), deletes what names `node` but is no longer desired, and leaves alone what
    /// another node holds.
    static func reconcile(
        desired: [String: [UInt8]], observed: [String: Etcd.KeyValue], node: String, lease: Int64
    ) -> ClusterPlan {
        var plan = ClusterPlan()
        for key in desired.keys.sorted() {
            let value = desired[key]!
            guard let kv = observed[key] else {
                plan.steps.append(.put(key: key, value: value, createRevision: 0))
                continue
            }
            let holder = ClusterJSON.holder(of: kv.value.bytes)
            if holder != node {
                plan.conflicts[key] = holder ?? "(unknown)"
            } else if kv.value.bytes == value && kv.lease == lease {
                plan.kept[key] = StoredKey(value: value, createRevision: kv.createRevision)
            } else {
                plan.steps.append(.put(key: key, value: value, createRevision: kv.createRevision))
            }
        }
        for key in observed.keys.sorted() where desired[key] == nil {
            let kv = observed[key]!
            guard ClusterJSON.holder(of: kv.value.bytes) == node else { continue }
            plan.steps.append(.delete(key: key, createRevision: kv.createRevision))
        }
        return plan
    }
}
