// What the fault injector does, as a value and as the text of gatewayd's fault flag:
// "loss=0.05,reorder=0.05,duplicate=0.01,corrupt=0.001,seed=42".
import Scheduling

/// Probabilities of each fault per frame, the seed that makes them repeatable, and how
/// reordering holds frames back.
public struct FaultConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// Which frames faults apply to: from the guest, to the guest, or both.
    public enum Direction: String, Sendable, CaseIterable {
        case both
        case input = "in"
        case output = "out"
    }

    /// Probability that a frame is dropped.
    public var loss: Double
    /// Probability that a frame is delivered twice.
    public var duplicate: Double
    /// Probability that a frame is held back behind later ones.
    public var reorder: Double
    /// Probability that one byte of a frame's IP packet is changed (checksums then catch it).
    public var corrupt: Double
    public var seed: UInt64
    /// A held frame goes out after this many later frames...
    public var reorderDepth: Int
    /// ...or after this long, whichever comes first (so the last frame of a burst still arrives).
    public var reorderDelay: Duration
    public var direction: Direction

    /// The keys `init(parsing:)` knows, in the order `description` writes them.
    public static let keys = ["loss", "duplicate", "reorder", "corrupt", "seed", "hold", "delay", "direction"]
    /// A held frame waits behind at most this many others.
    public static let maximumReorderDepth = 64

    public init(
        loss: Double = 0, duplicate: Double = 0, reorder: Double = 0, corrupt: Double = 0, seed: UInt64 = 1,
        reorderDepth: Int = 3, reorderDelay: Duration = .milliseconds(1), direction: Direction = .both
    ) {
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.corrupt = corrupt
        self.seed = seed
        self.reorderDepth = reorderDepth
        self.reorderDelay = reorderDelay
        self.direction = direction
    }

    /// True when some fault has a chance of happening.
    public var isActive: Bool { loss > 0 || duplicate > 0 || reorder > 0 || corrupt > 0 }

    /// A comma-separated list of key=value pairs; keys not given keep their defaults. Keys:
    /// loss, duplicate, reorder, corrupt (probabilities from 0 to 1), seed (unsigned 64-bit),
    /// hold (frames a reordered frame waits behind, 1 to 64), delay (the longest it waits:
    /// a number with ns, us, ms or s; plain numbers are milliseconds), direction (in, out, both).
    public init(parsing text: String) throws(ParseError) {
        self.init()
        var seen: Set<String> = []
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        guard !text.allSatisfy({ $0 == " " }) else {
            throw ParseError("empty fault specification; expected something like \(FaultConfiguration.example)")
        }
        for raw in items {
            let item = raw.trimmingSpaces
            guard let eq = item.firstIndex(of: "=") else {
                throw ParseError("'\(item)' is not key=value; expected something like \(FaultConfiguration.example)")
            }
            let key = item[..<eq].trimmingSpaces.lowercased()
            let value = item[item.index(after: eq)...].trimmingSpaces
            guard FaultConfiguration.keys.contains(key) else {
                throw ParseError("unknown fault setting '\(key)'; known: \(FaultConfiguration.keys.joined(separator: ", "))")
            }
            guard seen.insert(key).inserted else { throw ParseError("'\(key)' is given twice") }
            switch key {
            case "loss": loss = try FaultConfiguration.probability(key, value)
            case "duplicate": duplicate = try FaultConfiguration.probability(key, value)
            case "reorder": reorder = try FaultConfiguration.probability(key, value)
            case "corrupt": corrupt = try FaultConfiguration.probability(key, value)
            case "seed":
                guard let s = UInt64(value) else {
                    throw ParseError("seed=\(value): expected an unsigned 64-bit integer")
                }
                seed = s
            case "hold":
                guard let n = Int(value), n >= 1, n <= FaultConfiguration.maximumReorderDepth else {
                    throw ParseError("hold=\(value): expected a frame count from 1 to \(FaultConfiguration.maximumReorderDepth)")
                }
                reorderDepth = n
            case "delay":
                guard let d = FaultConfiguration.duration(value) else {
                    throw ParseError("delay=\(value): expected a duration such as 500us, 2ms or 1s (at most 10s)")
                }
                reorderDelay = d
            default:
                guard let d = Direction(rawValue: value.lowercased()) else {
                    throw ParseError("direction=\(value): expected in, out or both")
                }
                direction = d
            }
        }
    }

    /// The canonical text form; `init(parsing:)` reads it back to an equal value.
    public var description: String {
        "loss=\(loss),duplicate=\(duplicate),reorder=\(reorder),corrupt=\(corrupt),seed=\(seed),"
            + "hold=\(reorderDepth),delay=\(FaultConfiguration.format(reorderDelay)),direction=\(direction.rawValue)"
    }

    static let example = "loss=0.05,reorder=0.05,duplicate=0.01,corrupt=0.001,seed=42"

    /// Why a fault specification was refused; the message names the setting and what it takes.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        init(_ message: String) { self.message = message }
        public var description: String { "invalid fault specification: \(message)" }
    }

    private static func probability(_ key: String, _ value: Substring) throws(ParseError) -> Double {
        guard let p = Double(value), p >= 0, p <= 1 else {
            throw ParseError("\(key)=\(value): expected a probability from 0 to 1, such as 0.05")
        }
        return p
    }

    /// Units a delay may be written in, largest first, in nanoseconds.
    private static let units: [(String, UInt64)] = [("ms", 1_000_000), ("us", 1_000), ("ns", 1), ("s", 1_000_000_000)]

    private static func duration(_ text: Substring) -> Duration? {
        var number = text
        var scale: UInt64 = 1_000_000
        for (suffix, ns) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            scale = ns
            break
        }
        guard let n = UInt64(number), n <= 10_000_000_000 / scale else { return nil }
        return .nanoseconds(Int64(n * scale))
    }

    private static func format(_ d: Duration) -> String {
        let ns = d.nanoseconds
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
        return "\(ns)ns"
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return s
    }
}
