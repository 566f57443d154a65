// The config file the package installs (Tools/packaging/gatewayd.toml): gatewayd loads it, each
// setting it shows commented out is a real key at its real default, its examples load, and it
// names every key the reference documents.
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
        try changed.apply(toml: text.replacingOccurrences(of: "shard-nice = 0", with: "shard-nice = -5"), file: Self.path)
        #expect(Self.settings(changed) != Self.settings(DaemonConfiguration()))
    }

    @Test func everySectionIsThere() throws {
        let text = try Self.text()
        for table in ["descriptors", "addresses", "ports", "limits", "memory", "dns"] {
            #expect(text.contains("\n[\(table)]\n"), "no [\(table)] section")
        }
        #expect(text.contains("[policies."))
    }

    /// The `# ` lines from `first` to the next blank line, with that mark taken off.
    static func example(_ text: String, from first: String) throws -> String {
        let start = try #require(text.range(of: first)?.lowerBound)
        return text[start...].split(separator: "\n", omittingEmptySubsequences: false)
            .prefix { $0.hasPrefix("#") }
            .map { $0.hasPrefix("# ") ? String($0.dropFirst(2)) : "" }
            .joined(separator: "\n")
    }

    @Test func theClusterExampleLoads() throws {
        let text = try Self.text()
        var c = DaemonConfiguration()
        try c.apply(toml: text + "\n" + Self.example(text, from: "# [cluster]"), file: Self.path)
        #expect(c.cluster?.endpoints.count == 2)
    }

    /// Every key the reference's config file shows is in the installed file too, so a key added
    /// to gatewayd and documented reaches the operator's file.
    @Test func everyDocumentedKeyIsThere() throws {
        let text = try Self.text()
        let reference = try String(contentsOfFile: BuiltProducts.root + "/docs/control-api.md", encoding: .utf8)
        let section = try #require(reference.components(separatedBy: "### Config file (TOML)").last)
            .components(separatedBy: "\n### ").first ?? ""
        var keys: Set<String> = []
        for line in section.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if let equals = trimmed.firstIndex(of: "="), trimmed.first?.isLetter == true {
                let key = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
                if key.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" }) { keys.insert(key) }
            }
        }
        #expect(keys.count > 50, "read \(keys.count) keys from docs/control-api.md")
        let present = Set(
            text.split(separator: "\n").compactMap { line -> String? in
                let body = line.drop { $0 == "#" || $0 == " " }
                guard let equals = body.firstIndex(of: "=") else { return nil }
                return body[..<equals].trimmingCharacters(in: .whitespaces)
            })
        #expect(keys.subtracting(present).sorted() == [], "documented keys missing from the installed config")
    }

    @Test func theExamplePoliciesLoad() throws {
        let text = try Self.text()
        var c = DaemonConfiguration()
        try c.apply(toml: text + "\n" + Self.example(text, from: "# [policies.ci]"), file: Self.path)
        #expect(c.policies.keys.sorted() == ["ci", "pip"])
    }
}
