// The SACK scoreboard's merging on its own: blocks in any order give the same sorted, disjoint,
// non-adjacent ranges, and the bound keeps the lowest.
import Testing
@testable import NetStack

@Suite struct SACKScoreboardTests {
    private static func seq(_ n: UInt32) -> SequenceNumber { SequenceNumber(n) }

    private static func ranges(_ sb: SACKScoreboard) -> [[UInt32]] { sb.ranges.map { [$0.start.raw, $0.end.raw] } }

    private static let blocks: [(UInt32, UInt32)] = [
        (3000, 4000), (6000, 7000), (4000, 4500), (8000, 8500), (2500, 3100),
    ]

    /// Every order of the same blocks: touching ones merge, the others stay apart, sorted.
    @Test(arguments: [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 3, 1], [3, 1, 4, 0, 2]])
    func blocksMergeTheSameInAnyOrder(order: [Int]) {
        var sb = SACKScoreboard()
        var added = 0
        for i in order {
            let b = Self.blocks[i]
            added += sb.add(start: Self.seq(b.0), end: Self.seq(b.1), una: Self.seq(1000), max: Self.seq(9000))
        }
        #expect(Self.ranges(sb) == [[2500, 4500], [6000, 7000], [8000, 8500]])
        #expect(added == 3500)
        #expect(sb.sackedBytes == 3500)
    }

    /// A block spanning several ranges and the holes between them becomes one range.
    @Test func oneBlockSwallowsSeveralRanges() {
        var sb = SACKScoreboard()
        for start in stride(from: UInt32(2000), to: 8000, by: 2000) {
            sb.add(start: Self.seq(start), end: Self.seq(start + 500), una: Self.seq(1000), max: Self.seq(9000))
        }
        #expect(sb.ranges.count == 3)
        let added = sb.add(start: Self.seq(2200), end: Self.seq(6200), una: Self.seq(1000), max: Self.seq(9000))
        #expect(added == 3000, "4500 covered where 1500 were")
        #expect(Self.ranges(sb) == [[2000, 6500]])
    }

    /// Over the bound, the highest ranges go: the lowest matter for the next retransmission.
    @Test func boundKeepsTheLowestRanges() {
        var sb = SACKScoreboard(maxRanges: 2)
        for start: UInt32 in [5000, 3000, 7000, 1000] {
            sb.add(start: Self.seq(start), end: Self.seq(start + 100), una: Self.seq(0), max: Self.seq(9000))
        }
        #expect(Self.ranges(sb) == [[1000, 1100], [3000, 3100]])
    }
}
