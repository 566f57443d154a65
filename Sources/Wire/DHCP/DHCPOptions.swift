// The options of a DHCP message (RFC 2131 §4.1, RFC 2132) as a view over the message: checked
// once when parsed, then read by code without copying, across the 'file' and 'sname' fields
// when option overload (52) says they hold options too.

/// The options of a parsed DHCP message. Borrows the message: valid while its buffer is.
///
/// Areas are read in the order RFC 2131 §4.1 gives: the options field, then 'file', then
/// 'sname'. In each, pad (0) is skipped and end (255) stops the area. The options field must
/// hold an end option (RFC 2131 §4.1: "the last option must always be the 'end' option"):
/// without one the message was cut short and parsing throws `.truncated`; in 'file' and
/// 'sname', fixed-size fields that cannot be cut short, a missing end is accepted. Options this type reads
/// with a fixed size (RFC 2132's lengths) are checked for it when parsed, so the typed
/// accessors cannot fail: they return nil only when the option is absent (or, for the message
/// type, holds a value this enum does not know).
public struct DHCPOptions: Sequence, Equatable {
    /// The options field after the magic cookie, to the end of the message.
    public let field: UnsafeRawBufferPointer
    /// The 'file' field when option 52 says it holds options, else empty.
    public let fileArea: UnsafeRawBufferPointer
    /// The 'sname' field when option 52 says it holds options, else empty.
    public let snameArea: UnsafeRawBufferPointer
    /// Option 52's value: 0 none, 1 'file', 2 'sname', 3 both.
    public let overload: UInt8

    static var emptyArea: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: nil, count: 0) }

    /// Options in `field` alone (no overload areas), checked as `DHCPMessage.parse` would: it
    /// must end with the end option.
    public init(field: UnsafeRawBufferPointer) throws(WireError) {
        try self.init(field: field, file: DHCPOptions.emptyArea, sname: DHCPOptions.emptyArea)
    }

    /// Checks `field`, finds option 52 in it, and checks 'file' and 'sname' when it says so.
    /// An option whose length runs past its area, or a known option with the wrong length,
    /// throws `.badOption`.
    init(field: UnsafeRawBufferPointer, file: UnsafeRawBufferPointer, sname: UnsafeRawBufferPointer) throws(WireError) {
        let overload = try DHCPOptions.check(field, requireEnd: true)
        self.field = field
        self.overload = overload
        fileArea = overload & 1 != 0 ? file : DHCPOptions.emptyArea
        snameArea = overload & 2 != 0 ? sname : DHCPOptions.emptyArea
        if overload & 1 != 0 { _ = try DHCPOptions.check(fileArea, requireEnd: false) }
        if overload & 2 != 0 { _ = try DHCPOptions.check(snameArea, requireEnd: false) }
    }

    /// An empty view, for messages being built whose options are written separately.
    init() {
        field = DHCPOptions.emptyArea
        fileArea = DHCPOptions.emptyArea
        snameArea = DHCPOptions.emptyArea
        overload = 0
    }

    /// Checks one area; returns the overload value found in it (0 if none).
    private static func check(_ area: UnsafeRawBufferPointer, requireEnd: Bool) throws(WireError) -> UInt8 {
        let r = CheckedReader(area, layer: "dhcp")
        var overload: UInt8 = 0
        var i = 0
        while i < area.count {
            let code = try r.u8(i)
            if code == DHCPOptionCode.pad.rawValue {
                i += 1
                continue
            }
            if code == DHCPOptionCode.end.rawValue { return overload }
            guard i + 2 <= area.count else { throw WireError(.badOption, "dhcp") }
            let length = Int(try r.u8(i + 1))
            guard i + 2 + length <= area.count, lengthIsValid(code: code, length: length) else {
                throw WireError(.badOption, "dhcp")
            }
            if code == DHCPOptionCode.overload.rawValue && overload == 0 {
                overload = try r.u8(i + 2)
                guard overload >= 1 && overload <= 3 else { throw WireError(.badOption, "dhcp") }
            }
            i += 2 + length
        }
        guard !requireEnd else { throw WireError(.truncated, "dhcp") }
        return overload
    }

    /// RFC 2132's sizes for the options with typed accessors.
    private static func lengthIsValid(code: UInt8, length: Int) -> Bool {
        switch DHCPOptionCode(rawValue: code) {
        case .subnetMask, .broadcastAddress, .requestedIPAddress, .leaseTime, .serverIdentifier, .renewalTime, .rebindingTime:
            length == 4
        case .router, .domainNameServer:
            length >= 4 && length % 4 == 0
        case .interfaceMTU, .maxMessageSize:
            length == 2
        case .overload, .messageType:
            length == 1
        case .hostName, .domainName, .parameterRequestList:
            length >= 1
        case .clientIdentifier:
            length >= 2
        default:
            true
        }
    }

    /// One option as found: its code and its data (in the message).
    public struct Option {
        public let code: DHCPOptionCode
        public let data: UnsafeRawBufferPointer
    }

    public func makeIterator() -> Iterator { Iterator(options: self) }

    /// Walks the areas in order. Every read is checked: an option running past its area ends that area.
    public struct Iterator: IteratorProtocol {
        let options: DHCPOptions
        var areaIndex = 0
        var position = 0

        init(options: DHCPOptions) { self.options = options }

        public mutating func next() -> Option? {
            while areaIndex < 3 {
                let area = CheckedReader(
                    areaIndex == 0 ? options.field : areaIndex == 1 ? options.fileArea : options.snameArea, layer: "dhcp")
                // The end of an area ends the loop, not a failed read: a throw costs more than the walk.
                while position < area.count, let code = try? area.u8(position) {
                    if code == DHCPOptionCode.pad.rawValue {
                        position += 1
                        continue
                    }
                    guard code != DHCPOptionCode.end.rawValue, let length = try? Int(area.u8(position + 1)),
                        let data = try? area.bytes(position + 2, length)
                    else { break }
                    position += 2 + length
                    return Option(code: DHCPOptionCode(rawValue: code), data: data)
                }
                areaIndex += 1
                position = 0
            }
            return nil
        }
    }

    /// The data of the first option with `code`.
    public func first(_ code: DHCPOptionCode) -> UnsafeRawBufferPointer? {
        for option in self where option.code == code { return option.data }
        return nil
    }

    /// The data of every option with `code`, concatenated into `buffer` as RFC 3396 §7 says
    /// long options are split; nil when there is none. `.noSpace` when `buffer` is too small.
    public func concatenated(_ code: DHCPOptionCode, into buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> UnsafeRawBufferPointer? {
        var n = 0
        var found = false
        for option in self where option.code == code {
            found = true
            guard n + option.data.count <= buffer.count else { throw WireError(.noSpace, "dhcp") }
            // bound: the guard above; option.data is read by iteration, which stays inside it.
            for (i, byte) in option.data.enumerated() { buffer.setU8(byte, n + i) }
            n += option.data.count
        }
        return found ? UnsafeRawBufferPointer(rebasing: buffer[0..<n]) : nil
    }

    private func reader(_ code: DHCPOptionCode) -> CheckedReader? {
        first(code).map { CheckedReader($0, layer: "dhcp") }
    }
    private func address(_ code: DHCPOptionCode) -> IPv4Address? { reader(code).flatMap { try? $0.ipv4(0) } }
    private func u32(_ code: DHCPOptionCode) -> UInt32? { reader(code).flatMap { try? $0.be32(0) } }
    private func u16(_ code: DHCPOptionCode) -> UInt16? { reader(code).flatMap { try? $0.be16(0) } }

    /// Option 53. Nil when absent or a type this enum does not know.
    public var messageType: DHCPMessageType? { reader(.messageType).flatMap { try? DHCPMessageType(rawValue: $0.u8(0)) } }
    /// Option 50: the address a client asks for in DISCOVER and REQUEST.
    public var requestedIP: IPv4Address? { address(.requestedIPAddress) }
    /// Option 54: the server a client is answering (REQUEST in SELECTING state) or that replied.
    public var serverIdentifier: IPv4Address? { address(.serverIdentifier) }
    /// Option 51, seconds.
    public var leaseTime: UInt32? { u32(.leaseTime) }
    /// Option 58 (T1), seconds.
    public var renewalTime: UInt32? { u32(.renewalTime) }
    /// Option 59 (T2), seconds.
    public var rebindingTime: UInt32? { u32(.rebindingTime) }
    /// Option 55: the option codes the client asks for, one byte each.
    public var parameterRequestList: UnsafeRawBufferPointer? { first(.parameterRequestList) }
    /// Option 61: type byte then identifier (RFC 2132 §9.14).
    public var clientIdentifier: UnsafeRawBufferPointer? { first(.clientIdentifier) }
    /// Option 12, bytes as sent (not NUL terminated, not necessarily ASCII).
    public var hostName: UnsafeRawBufferPointer? { first(.hostName) }
    /// Option 15, bytes as sent.
    public var domainName: UnsafeRawBufferPointer? { first(.domainName) }
    /// Option 57, as sent. RFC 2132 §9.10 sets 576 as the least legal value; callers clamp.
    public var maxMessageSize: UInt16? { u16(.maxMessageSize) }
    /// Option 1.
    public var subnetMask: IPv4Address? { address(.subnetMask) }
    /// Option 3, in order of preference.
    public var routers: DHCPAddressList? { first(.router).map(DHCPAddressList.init) }
    /// Option 6, in order of preference.
    public var dnsServers: DHCPAddressList? { first(.domainNameServer).map(DHCPAddressList.init) }
    /// Option 26. RFC 2132 §5.1 sets 68 as the least legal value; callers clamp.
    public var interfaceMTU: UInt16? { u16(.interfaceMTU) }
    /// Option 28.
    public var broadcastAddress: IPv4Address? { address(.broadcastAddress) }

    /// Option 119, every instance concatenated into `scratch` (RFC 3397 §2 lets a long list span
    /// several) and decoded. Nil when absent; throws as `DHCPDomainSearchList.parse` does.
    public func domainSearch(scratch: UnsafeMutableRawBufferPointer) throws(WireError) -> DHCPDomainSearchList? {
        guard let data = try concatenated(.domainSearch, into: scratch) else { return nil }
        return try DHCPDomainSearchList.parse(data)
    }

    /// True when the client's parameter request list names `code`.
    public func requests(_ code: DHCPOptionCode) -> Bool {
        guard let list = parameterRequestList else { return false }
        for c in list where c == code.rawValue { return true }
        return false
    }

    /// Equal when every area holds the same bytes.
    public static func == (a: DHCPOptions, b: DHCPOptions) -> Bool {
        a.overload == b.overload && DHCPMessage.sameBytes(a.field, b.field) && DHCPMessage.sameBytes(a.fileArea, b.fileArea)
            && DHCPMessage.sameBytes(a.snameArea, b.snameArea)
    }
}

/// A list of IPv4 addresses in an option (routers, DNS servers): four bytes each, in the message.
public struct DHCPAddressList: RandomAccessCollection {
    public let bytes: UnsafeRawBufferPointer

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    public var startIndex: Int { 0 }
    public var endIndex: Int { bytes.count / 4 }
    public subscript(i: Int) -> IPv4Address {
        precondition(i >= 0 && i < endIndex, "address index out of range")
        // bound: the precondition above; endIndex is bytes.count / 4.
        return bytes.uncheckedIPv4(i * 4)
    }
}
