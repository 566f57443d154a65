// The JSON of etcd's v3 gRPC gateway (`/v3/kv/*`, `/v3/lease/*`) for the few calls gatewayd makes:
// keys and values travel base64-encoded, 64-bit integers as decimal strings (proto3's JSON mapping).
// No I/O here: `EtcdClient` sends these, the unit tests decode answers captured from etcd 3.4.
import Foundation

public enum Etcd {
    /// A 64-bit integer as the gateway writes it ("42"); a bare number is read too.
    public struct Int64Text: Codable, Hashable, Sendable {
        public var value: Int64
        public init(_ value: Int64) { self.value = value }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let text = try? c.decode(String.self), let n = Int64(text) {
                value = n
            } else {
                value = try c.decode(Int64.self)
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(String(value))
        }
    }

    /// Bytes as the gateway writes them: standard base64.
    public struct Bytes: Codable, Hashable, Sendable {
        public var bytes: [UInt8]
        public init(_ bytes: [UInt8]) { self.bytes = bytes }
        public init(_ text: String) { bytes = Array(text.utf8) }

        public var text: String { String(decoding: bytes, as: UTF8.self) }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            let text = try c.decode(String.self)
            guard let data = Data(base64Encoded: text) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not base64")
            }
            bytes = Array(data)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(Data(bytes).base64EncodedString())
        }
    }

    /// The key just past every key that starts with `prefix`: a range over [prefix, end) is the prefix.
    public static func rangeEnd(ofPrefix prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        // Every byte 0xFF: "\0" means "to the end of the key space" (etcd's rpc.proto, RangeRequest).
        return [0]
    }

    // MARK: - Key-value

    public struct KeyValue: Decodable, Hashable, Sendable {
        public var key: Bytes
        public var value: Bytes
        public var createRevision: Int64
        public var modRevision: Int64
        /// The lease the key is attached to; 0 when none.
        public var lease: Int64

        enum CodingKeys: String, CodingKey {
            case key, value, lease
            case createRevision = "create_revision"
            case modRevision = "mod_revision"
        }

        public init(key: Bytes, value: Bytes, createRevision: Int64, modRevision: Int64, lease: Int64) {
            self.key = key
            self.value = value
            self.createRevision = createRevision
            self.modRevision = modRevision
            self.lease = lease
        }

        public init(from decoder: any Decoder) throws {
            // proto3 leaves out fields at their default: an empty value, lease 0.
            let c = try decoder.container(keyedBy: CodingKeys.self)
            key = try c.decode(Bytes.self, forKey: .key)
            value = try c.decodeIfPresent(Bytes.self, forKey: .value) ?? Bytes([])
            createRevision = try c.decodeIfPresent(Int64Text.self, forKey: .createRevision)?.value ?? 0
            modRevision = try c.decodeIfPresent(Int64Text.self, forKey: .modRevision)?.value ?? 0
            lease = try c.decodeIfPresent(Int64Text.self, forKey: .lease)?.value ?? 0
        }
    }

    /// `/v3/kv/range`: one key, or every key in [key, rangeEnd).
    public struct RangeRequest: Encodable, Hashable, Sendable {
        public var key: Bytes
        public var rangeEnd: Bytes?

        enum CodingKeys: String, CodingKey {
            case key
            case rangeEnd = "range_end"
        }

        public init(key: String, rangeEnd: [UInt8]? = nil) {
            self.key = Bytes(key)
            self.rangeEnd = rangeEnd.map(Bytes.init)
        }

        public static func prefix(_ prefix: String) -> RangeRequest {
            RangeRequest(key: prefix, rangeEnd: Etcd.rangeEnd(ofPrefix: Array(prefix.utf8)))
        }
    }

    public struct RangeResponse: Decodable, Hashable, Sendable {
        public var kvs: [KeyValue]

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            kvs = try c.decodeIfPresent([KeyValue].self, forKey: .kvs) ?? []
        }

        enum CodingKeys: String, CodingKey { case kvs }
    }

    /// `/v3/kv/put`, and a transaction's put.
    public struct PutRequest: Encodable, Hashable, Sendable {
        public var key: Bytes
        public var value: Bytes
        public var lease: Int64Text?

        public init(key: String, value: [UInt8], lease: Int64?) {
            self.key = Bytes(key)
            self.value = Bytes(value)
            self.lease = lease.map(Int64Text.init)
        }
    }

    /// `/v3/kv/deleterange`, and a transaction's delete.
    public struct DeleteRangeRequest: Encodable, Hashable, Sendable {
        public var key: Bytes
        public init(key: String) { self.key = Bytes(key) }
    }

    /// One comparison of a transaction: the key's create revision equals `createRevision` (0: the
    /// key does not exist).
    public struct Compare: Encodable, Hashable, Sendable {
        public var key: Bytes
        public var createRevision: Int64

        public init(key: String, createRevision: Int64) {
            self.key = Bytes(key)
            self.createRevision = createRevision
        }

        enum CodingKeys: String, CodingKey {
            case key, target, result
            case createRevision = "create_revision"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(key, forKey: .key)
            try c.encode("CREATE", forKey: .target)
            try c.encode("EQUAL", forKey: .result)
            try c.encode(Int64Text(createRevision), forKey: .createRevision)
        }
    }

    public enum RequestOp: Encodable, Hashable, Sendable {
        case put(PutRequest)
        case range(RangeRequest)
        case delete(DeleteRangeRequest)

        enum CodingKeys: String, CodingKey {
            case put = "request_put"
            case range = "request_range"
            case delete = "request_delete_range"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .put(let p): try c.encode(p, forKey: .put)
            case .range(let r): try c.encode(r, forKey: .range)
            case .delete(let d): try c.encode(d, forKey: .delete)
            }
        }
    }

    /// `/v3/kv/txn`: if every comparison holds, `success` runs, else `failure`.
    public struct TxnRequest: Encodable, Hashable, Sendable {
        public var compare: [Compare]
        public var success: [RequestOp]
        public var failure: [RequestOp]

        public init(compare: [Compare], success: [RequestOp], failure: [RequestOp]) {
            self.compare = compare
            self.success = success
            self.failure = failure
        }

        /// Runs `then` on `key` only while its create revision is `createRevision` (0: while it
        /// does not exist); otherwise reads the key, so the caller learns who holds it.
        public static func guarded(_ key: String, createRevision: Int64, then op: RequestOp) -> TxnRequest {
            TxnRequest(
                compare: [Compare(key: key, createRevision: createRevision)], success: [op],
                failure: [.range(RangeRequest(key: key))])
        }
    }

    public struct TxnResponse: Decodable, Hashable, Sendable {
        public var succeeded: Bool
        /// The store's revision after the transaction: a key it created has this create revision.
        public var revision: Int64
        /// The keys the failure branch read.
        public var ranged: [KeyValue]

        enum CodingKeys: String, CodingKey { case header, succeeded, responses }
        enum HeaderKeys: String, CodingKey { case revision }
        struct ResponseOp: Decodable { var response_range: RangeResponse? }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            succeeded = try c.decodeIfPresent(Bool.self, forKey: .succeeded) ?? false
            let header = try? c.nestedContainer(keyedBy: HeaderKeys.self, forKey: .header)
            revision = (try header?.decodeIfPresent(Int64Text.self, forKey: .revision))?.value ?? 0
            let ops = try c.decodeIfPresent([ResponseOp].self, forKey: .responses) ?? []
            ranged = ops.flatMap { $0.response_range?.kvs ?? [] }
        }
    }

    // MARK: - Leases

    /// `/v3/lease/grant`.
    public struct LeaseGrantRequest: Encodable, Hashable, Sendable {
        public var TTL: Int64Text
        public init(ttl: Int) { TTL = Int64Text(Int64(ttl)) }
    }

    public struct LeaseGrantResponse: Decodable, Hashable, Sendable {
        public var ID: Int64Text
        public var TTL: Int64Text
    }

    /// `/v3/lease/keepalive` and `/v3/lease/revoke`.
    public struct LeaseRequest: Encodable, Hashable, Sendable {
        public var ID: Int64Text
        public init(id: Int64) { ID = Int64Text(id) }
    }

    /// `/v3/lease/keepalive` answers as a stream of `{"result": …}`; one request, one result.
    /// A lease etcd no longer has comes back without a TTL.
    public struct KeepAliveResponse: Decodable, Hashable, Sendable {
        public struct Result: Decodable, Hashable, Sendable {
            public var TTL: Int64Text?
        }
        public var result: Result?

        /// Seconds the lease has left; 0 when etcd no longer has it.
        public var ttl: Int64 { result?.TTL?.value ?? 0 }
    }

    /// What the gateway answers instead on a failed call.
    public struct ErrorBody: Decodable, Hashable, Sendable {
        public var message: String?
        public var error: String?
        /// A gRPC status code: 5 NotFound (a lease etcd no longer has), 14 Unavailable (no leader).
        public var code: Int?
    }
}
