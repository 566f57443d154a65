// Per-frame cost of Wire's parsers and emitters: nanoseconds per frame and heap allocations
// per call, for each format in the table below. Run with Tools/wire-bench.sh (release build).
//
// Allocations are counted by the CMallocCounter target, which defines malloc, calloc, realloc,
// posix_memalign, aligned_alloc and memalign in this executable and forwards each to glibc's
// __libc_* entry after counting it: ELF resolution gives the executable's definitions priority,
// so the Swift runtime's allocations are counted too. That is a true count of allocation calls
// (the check at start-up verifies one allocation per Array is seen), with no LD_PRELOAD.
import CMallocCounter
import Wire

/// One format's measurements: a parse of `input` and, where the format has one, an emit.
/// Each closure returns a number that depends on the work, so the optimiser keeps the work.
struct BenchCase {
    let name: String
    let input: UnsafeRawBufferPointer
    let parse: (UnsafeRawBufferPointer) -> Int
    let emit: ((UnsafeMutableRawBufferPointer) -> Int)?
}

/// Sample frames live for the whole run (parsed views point into them).
func stable(_ bytes: [UInt8]) -> UnsafeRawBufferPointer {
    let b = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
    b.copyBytes(from: bytes)
    return UnsafeRawBufferPointer(b)
}

func build(_ capacity: Int = 2048, _ body: (UnsafeMutableRawBufferPointer) throws -> Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: capacity)
    let n = out.withUnsafeMutableBytes { (try? body($0)) ?? 0 }
    precondition(n > 0, "sample build failed")
    return Array(out[0..<n])
}

// ── Samples, built with Wire's own emitters (the tests check those byte for byte) ──

let clientMAC = MACAddress(0x52, 0x54, 0x00, 0x12, 0x34, 0x56)
let discover = stable(build { out in
    // A busybox udhcpc DISCOVER: the options its real one carries, padded to 300 bytes.
    var w = DHCPOptionWriter(buffer: out, at: DHCPMessage.headerLength)
    try w.append(.messageType, byte: DHCPMessageType.discover.rawValue)
    let id: [UInt8] = [1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
    try id.withUnsafeBytes { try w.append(.clientIdentifier, bytes: $0) }
    try w.append(.maxMessageSize, u16: 576)
    let prl: [UInt8] = [1, 3, 6, 12, 15, 28, 42]
    try prl.withUnsafeBytes { try w.append(.parameterRequestList, bytes: $0) }
    try w.append(.vendorClassIdentifier, text: "udhcp 1.36.1")
    try w.appendEnd()
    w.pad(to: DHCPMessage.bootpMinimumLength)
    let options = try DHCPOptions(field: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(out)[DHCPMessage.headerLength..<w.position]))
    let m = DHCPMessage(op: .request, xid: 0x3903_F326, chaddrField: .init(mac: clientMAC), options: options)
    return try m.emit(into: out)
})
let parsedDiscover = try! DHCPMessage.parse(discover)
let lease = DHCPLeaseParameters(
    serverIdentifier: IPv4Address(10, 0, 2, 2), leaseTime: 86400, subnetMask: IPv4Address(255, 255, 255, 0),
    router: IPv4Address(10, 0, 2, 2), dnsServers: [IPv4Address(10, 0, 2, 3)], interfaceMTU: 1500,
    domainName: "sandbox.internal", domainSearch: ["sandbox.internal", "example.com"],
    broadcastAddress: IPv4Address(10, 0, 2, 255)
)
let offerReply = DHCPReply(replyingTo: parsedDiscover, type: .offer, yourAddress: IPv4Address(10, 0, 2, 15))
let offer = stable(build { try offerReply.emit(into: $0, parameters: lease) })

let query = stable(build { try DNSQueryBuilder.emit(id: 0x1A2B, name: "www.github.com", type: .a, ednsPayloadSize: 1232, into: $0) })
let parsedQuery = try! DNSMessage.parse(query)
@MainActor
func answer(_ out: UnsafeMutableRawBufferPointer) -> Int {
    guard var b = try? DNSResponseBuilder(respondingTo: parsedQuery, into: out),
          let target = try? b.appendCNAME("github.com", ttl: 3600) else { return 0 }
    b.appendA(IPv4Address(140, 82, 121, 4), ttl: 60, owner: target)
    return b.finish()
}
let response = stable(build { answer($0) })

// ── What each case does per frame: what the gateway would read from it ──

enum Work {
    static func dhcpServerRead(_ b: UnsafeRawBufferPointer) -> Int {
        guard let m = try? DHCPMessage.parse(b) else { return -1 }
        let o = m.options
        return Int(o.messageType?.rawValue ?? 0) &+ (o.clientIdentifier?.count ?? 0) &+ (o.parameterRequestList?.count ?? 0)
            &+ Int(o.requestedIP?.raw ?? 0) &+ Int(m.chaddr?.raw ?? 0)
    }

    static func dhcpClientRead(_ b: UnsafeRawBufferPointer) -> Int {
        guard let m = try? DHCPMessage.parse(b) else { return -1 }
        let o = m.options
        return Int(m.yiaddr.raw) &+ Int(o.leaseTime ?? 0) &+ Int(o.subnetMask?.raw ?? 0) &+ (o.dnsServers?.count ?? 0)
    }

    static func dnsQueryRead(_ b: UnsafeRawBufferPointer) -> Int {
        guard let m = try? DNSMessage.parse(b), let q = m.question else { return -1 }
        return (q.name.matches("www.github.com") ? 1 : 0) &+ Int(q.type.rawValue) &+ (m.edns?.effectivePayloadSize ?? 0)
    }

    static func dnsResponseRead(_ b: UnsafeRawBufferPointer) -> Int {
        guard let m = try? DNSMessage.parse(b) else { return -1 }
        var sum = 0
        for r in m.answers {
            if case .a(let a) = r.data { sum &+= Int(a.raw) }
            sum &+= Int(r.ttl)
        }
        return sum
    }
}

// ──────────────────────────────────────────────────────────────────────────────────────────────
// THE CASES. One line per format; L2–L4 formats (Ethernet, IPv4, TCP, …) are added the same way.
// ──────────────────────────────────────────────────────────────────────────────────────────────
let cases: [BenchCase] = [
    BenchCase(name: "DHCP DISCOVER (300 B)", input: discover, parse: Work.dhcpServerRead, emit: { (try? parsedDiscover.emit(into: $0)) ?? -1 }),
    BenchCase(name: "DHCP OFFER (build)", input: offer, parse: Work.dhcpClientRead, emit: { (try? offerReply.emit(into: $0, parameters: lease)) ?? -1 }),
    BenchCase(name: "DNS query (EDNS)", input: query, parse: Work.dnsQueryRead, emit: {
        (try? DNSQueryBuilder.emit(id: 0x1A2B, name: "www.github.com", type: .a, ednsPayloadSize: 1232, into: $0)) ?? -1
    }),
    BenchCase(name: "DNS response (CNAME+A)", input: response, parse: Work.dnsResponseRead, emit: answer),
] + frameCases

// ── Measurement ──

var sink = 0

@MainActor @inline(never)
func consume(_ x: Int) { sink &+= x }

/// Nanoseconds per call: the best of several rounds, each sized to last about 50 ms.
@MainActor
func nanoseconds(_ body: () -> Int) -> Double {
    let clock = ContinuousClock()
    var iterations = 1000
    while true {
        let start = clock.now
        for _ in 0..<iterations { consume(body()) }
        let elapsed = start.duration(to: clock.now)
        if elapsed > .milliseconds(50) || iterations >= 1 << 26 { break }
        iterations *= 4
    }
    var best = Double.infinity
    for _ in 0..<7 {
        let start = clock.now
        for _ in 0..<iterations { consume(body()) }
        let d = start.duration(to: clock.now)
        let ns = Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9
        best = min(best, ns / Double(iterations))
    }
    return best
}

/// Heap allocations per call, over 1000 calls after a warm-up call.
@MainActor
func allocations(_ body: () -> Int) -> Double {
    consume(body())
    malloc_counter_start()
    for _ in 0..<1000 { consume(body()) }
    malloc_counter_stop()
    return Double(malloc_counter_allocations()) / 1000
}

func column(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

/// Fixed-point text without Foundation (and without libm: no `rounded()`).
func format(_ v: Double, decimals: Int) -> String {
    var scale = 1
    for _ in 0..<decimals { scale *= 10 }
    let n = Int(v * Double(scale) + 0.5)
    guard decimals > 0 else { return String(n) }
    let fraction = String(n % scale)
    return "\(n / scale)." + String(repeating: "0", count: decimals - fraction.count) + fraction
}

// The counter must see what it claims to: 1000 one-element arrays are 1000 allocations.
let check = allocations { [UInt8](repeating: 1, count: 64).count }
precondition(check >= 1, "malloc counter sees no allocations: counting is not in effect")

let outBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
print("Wire benchmark (release; ns/frame is the best of 7 rounds; allocs per call over 1000 calls)")
print("allocation counter check: \(format(check, decimals: 2)) allocs per [UInt8](repeating:count:) (expect 1)")
print("")
print(column("format", 26) + column("bytes", 7) + column("parse ns", 10) + column("parse allocs", 14) + column("emit ns", 9) + "emit allocs")
for c in cases {
    let parseNs = nanoseconds { c.parse(c.input) }
    let parseAllocs = allocations { c.parse(c.input) }
    var emitNs = "-", emitAllocs = "-"
    if let emit = c.emit {
        emitNs = format(nanoseconds { emit(outBuffer) }, decimals: 0)
        emitAllocs = format(allocations { emit(outBuffer) }, decimals: 2)
    }
    print(column(c.name, 26) + column("\(c.input.count)", 7) + column(format(parseNs, decimals: 0), 10)
        + column(format(parseAllocs, decimals: 2), 14) + column(emitNs, 9) + emitAllocs)
}
if sink == 42 { print("") }  // keeps `sink` observable
