// The state files a restart restores from: their format version, atomic replacement, and how
// corrupt, foreign and older files are told apart and reported instead of restored.
import Foundation
import GatewayControl
import Testing

@Suite struct StateStoreTests {
    final class Directory {
        let path = NSTemporaryDirectory() + "gwstate-\(UUID().uuidString.prefix(8))"
        let store: StateStore
        init() throws { store = try StateStore(directory: path) }
        deinit { try? FileManager.default.removeItem(atPath: path) }

        func write(_ text: String, as name: String) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: store.sandboxDirectory + "/" + name))
        }

        func names() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: store.sandboxDirectory)) ?? []).sorted()
        }
    }

    static let sample = SandboxState(
        addressBlock: 7,
        sandbox: AttachRequest(
            id: "keep", netns: "ns", dhcp: true, mtu: 9000, policy: "open", mac: "02:00:00:00:00:09",
            ports: [
                PublishRequest(hostIP: "127.0.0.1", hostPort: 8080, guestPort: 80, protocol: "tcp"),
                PublishRequest(hostIP: "::1", hostPort: 5353, guestPort: 53, protocol: "udp"),
            ]))

    @Test func roundTripCarriesVersionBlockAndPorts() throws {
        let d = try Directory()
        try d.store.save(Self.sample)
        let attributes = try FileManager.default.attributesOfItem(atPath: d.store.sandboxDirectory)
        #expect((attributes[.posixPermissions] as? Int) == 0o700)
        let fileAttributes = try FileManager.default.attributesOfItem(atPath: d.store.path(of: "keep"))
        #expect((fileAttributes[.posixPermissions] as? Int) == 0o600)
        let text = try String(contentsOfFile: d.store.path(of: "keep"), encoding: .utf8)
        #expect(text.contains("\"formatVersion\" : \(SandboxState.currentFormatVersion)"))
        #expect(text.contains("\"addressBlock\" : 7"))
        let leftovers = d.store.leftovers()
        #expect(leftovers.count == 1 && leftovers.first?.problem == nil)
        #expect(leftovers.first?.state == Self.sample)
        d.store.remove(id: "keep")
        #expect(d.store.leftovers().isEmpty && d.names().isEmpty)
    }

    /// A save replaces the file by rename (a new inode, never the old one rewritten in place) and
    /// leaves no temporary file behind; one a crash left mid-write is cleared and not restored.
    @Test func saveReplacesWholeFilesAndCrashLeftoversAreCleared() throws {
        let d = try Directory()
        try d.store.save(Self.sample)
        let before = try #require(
            FileManager.default.attributesOfItem(atPath: d.store.path(of: "keep"))[.systemFileNumber] as? Int)
        var changed = Self.sample
        changed.sandbox.ports = nil
        try d.store.save(changed)
        let after = try #require(
            FileManager.default.attributesOfItem(atPath: d.store.path(of: "keep"))[.systemFileNumber] as? Int)
        #expect(before != after)
        #expect(d.names() == ["keep.json"])
        #expect(d.store.leftovers().first?.state == changed)

        // What a crash between write and rename leaves: a partial temporary file.
        try d.write("{\"formatVersion\": 1, \"sandb", as: ".keep.json.tmp-1234abcd")
        let leftovers = d.store.leftovers()
        #expect(leftovers.count == 1 && leftovers.first?.state == changed)
        #expect(d.names() == ["keep.json"])
    }

    @Test(arguments: [
        ("not json at all", "it is not a JSON object"),
        ("[1, 2]", "it is not a JSON object"),
        (#"{"formatVersion": 1, "addressBlock": 3, "sandbox": {"netns": "n"}}"#, "field 'sandbox.id' is missing"),
        (#"{"formatVersion": 99, "sandbox": {"id": "x", "netns": "n"}}"#, "format version 99 is not one"),
        (#"{"something": "else"}"#, "it is not a gatewayd state file"),
        (#"{"formatVersion": 1, "addressBlock": 3, "sandbox": {"id": "other", "netns": "n"}}"#,
         "it holds sandbox 'other' but is named x.json"),
    ])
    func unusableFilesAreReportedAndSetAside(_ text: String, _ says: String) throws {
        let d = try Directory()
        try d.write(text, as: "x.json")
        let leftover = try #require(d.store.leftovers().first)
        #expect(leftover.state == nil)
        #expect(leftover.problem?.contains(says) == true, "\(leftover.problem ?? "no problem")")
        let kept = d.store.reject(leftover)
        #expect(kept.hasSuffix("/x.json" + StateStore.rejectedSuffix))
        #expect(d.names() == ["x.json.rejected"])
        #expect(d.store.leftovers().isEmpty)
        #expect(try String(contentsOfFile: kept, encoding: .utf8) == text)
    }

    /// An older gatewayd wrote the bare attach request: it is read as version 0, with no block.
    @Test func filesOfAnOlderGatewaydAreReadAsVersionZero() throws {
        let d = try Directory()
        try d.write(#"{"id": "old", "netns": "n", "mac": "02:00:00:00:00:05"}"#, as: "old.json")
        let state = try #require(d.store.leftovers().first?.state)
        #expect(state.formatVersion == 0 && state.addressBlock == nil)
        #expect(state.sandbox == AttachRequest(id: "old", netns: "n", mac: "02:00:00:00:00:05"))
    }
}
