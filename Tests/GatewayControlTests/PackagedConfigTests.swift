// The config file the package installs (Tools/packaging/gatewayd.toml): gatewayd loads it, and
// each setting it shows commented out is a real key at its real default.
import Foundation
import GatewayControl
import Testing

struct PackagedConfigTests {
    static let path = BuiltProducts.root + "/Tools/packaging/gatewayd.toml"

    static func text() throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    /// The file with every commented-out setting (`#key = …`, no space after the '#') in effect;
    /// prose and examples keep their "# ".
    static func uncommented(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            guard line.hasPrefix("#"), let next = line.dropFirst().first, next.isLetter else { return String(line) }
            return String(line.dropFirst())
        }.joined(separator: "\n")
    }

    /// Every stored setting, nested values included.
    static func settings(_ c: DaemonConfiguration) -> String { String(describing: c) }

    @Test func asInstalledItLoadsToTheDefaults() throws {
        let c = try DaemonConfiguration.load(path: Self.path)
        #expect(Self.settings(c) == Self.settings(DaemonConfiguration()))
    }

    @Test func theSettingsItShowsAreTheDefaults() throws {
        let text = Self.uncommented(try Self.text())
        #expect(text != (try Self.text()))
        var c = DaemonConfiguration()
        try c.apply(toml: text, file: Self.path)
        #expect(Self.settings(c) == Self.settings(DaemonConfiguration()))
        // A setting that is not its default shows in the comparison.
        var changed = DaemonConfiguration()
        try changed.apply(toml: text.replacingOccurrences(of: "shard-nice = -10", with: "shard-nice = -5"), file: Self.path)
        #expect(Self.settings(changed) != Self.settings(DaemonConfiguration()))
    }

    @Test func everySectionIsThere() throws {
        let text = try Self.text()
        for table in ["descriptors", "addresses", "ports", "limits", "memory", "dns"] {
            #expect(text.contains("\n[\(table)]\n"), "no [\(table)] section")
        }
        #expect(text.contains("[policies."))
    }

    @Test func theExamplePoliciesLoad() throws {
        let text = try Self.text()
        let start = try #require(text.range(of: "# [policies.ci]")?.lowerBound)
        let examples = text[start...].split(separator: "\n").map { $0.hasPrefix("# ") ? $0.dropFirst(2) : "" }
        var c = DaemonConfiguration()
        try c.apply(toml: text + "\n" + examples.joined(separator: "\n"), file: Self.path)
        #expect(c.policies.keys.sorted() == ["ci", "pip"])
    }
}
