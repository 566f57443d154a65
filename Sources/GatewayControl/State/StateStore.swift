// The state directory: one JSON file per attached sandbox (STATE_DIR/sandboxes/ID.json), written
// on attach and removed on detach, so a gatewayd killed with -9 can clean up and restore.
import Foundation

public struct StateStore: Sendable {
    public let directory: String
    public var sandboxDirectory: String { directory + "/sandboxes" }

    /// Creates the directories (mode 0700: the files name namespaces and addresses).
    public init(directory: String) throws(ControlError) {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(
                atPath: directory + "/sandboxes", withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700])
        } catch {
            throw ControlError(
                .system, "cannot create the state directory \(directory)/sandboxes: \(error.localizedDescription)")
        }
    }

    public func path(of id: String) -> String { sandboxDirectory + "/" + id + ".json" }

    /// Writes the sandbox's attach request, atomically (a crash leaves the old file or the new).
    public func save(_ request: AttachRequest) throws(ControlError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            let data = try encoder.encode(request)
            try data.write(to: URL(fileURLWithPath: path(of: request.id)), options: .atomic)
        } catch {
            throw ControlError(.system, "cannot write \(path(of: request.id)): \(error.localizedDescription)")
        }
    }

    public func remove(id: String) {
        try? FileManager.default.removeItem(atPath: path(of: id))
    }

    /// A file found at start: its path and, when it could be read, the request in it.
    public struct Leftover: Sendable {
        public var path: String
        public var request: AttachRequest?
    }

    /// Every sandbox file present, in name order.
    public func leftovers() -> [Leftover] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: sandboxDirectory)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().map { name in
            let path = sandboxDirectory + "/" + name
            let request = FileManager.default.contents(atPath: path).flatMap {
                try? JSONDecoder().decode(AttachRequest.self, from: $0)
            }
            return Leftover(path: path, request: request)
        }
    }

    /// Removes a file found by `leftovers()`.
    public func removeLeftover(_ leftover: Leftover) {
        try? FileManager.default.removeItem(atPath: leftover.path)
    }
}
