// The state directory: one JSON file per attached sandbox (STATE_DIR/sandboxes/ID.json), written
// on attach, publish and unpublish and removed on detach, so a gatewayd killed with -9 can restore.
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One sandbox's state file: everything a restart needs to attach it again exactly as it was.
public struct SandboxState: Codable, Sendable, Hashable {
    /// The format this gatewayd writes and reads. Files from an older gatewayd that carried the
    /// bare attach request (no version) are read as version 0.
    public static let currentFormatVersion = 1

    public var formatVersion: Int
    /// The address block the sandbox held (`SandboxSpec.addressBlock`); nil in a version-0 file.
    public var addressBlock: Int?
    /// An attach request that reproduces the sandbox: the MAC it got, and its published ports
    /// as bound (host address and port filled in even where the daemon chose them).
    public var sandbox: AttachRequest
    /// The namespace the sandbox went into (`NamespaceIdentity`, "DEVICE:INODE"). A restore into
    /// a namespace given by path checks it: the path's process may be gone and its PID reused.
    public var namespaceIdentity: String?

    public init(
        addressBlock: Int?, sandbox: AttachRequest, namespaceIdentity: String? = nil,
        formatVersion: Int = Self.currentFormatVersion
    ) {
        self.formatVersion = formatVersion
        self.addressBlock = addressBlock
        self.sandbox = sandbox
        self.namespaceIdentity = namespaceIdentity
    }
}

public struct StateStore: Sendable {
    public let directory: String
    public var sandboxDirectory: String { directory + "/sandboxes" }
    /// What a file set aside by `reject` is renamed to end with; `leftovers` no longer sees it.
    public static let rejectedSuffix = ".rejected"

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

    /// Writes a sandbox's state file so that a crash at any point leaves either the old file or
    /// the new one, complete: the bytes go to a temporary file that is flushed to disk before it
    /// is renamed over the old one, and the directory is flushed so the rename itself survives.
    public func save(_ state: SandboxState) throws(ControlError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let target = path(of: state.sandbox.id)
        let data: Data
        do {
            data = try encoder.encode(state)
        } catch {
            throw ControlError(.system, "cannot encode the state of sandbox '\(state.sandbox.id)': \(error)")
        }
        // A dot name never ends in .json, so a temporary file left by a crash is not a leftover.
        let temporary = sandboxDirectory + "/." + state.sandbox.id + ".json.tmp-" + UUID().uuidString.prefix(8)
        func fail(_ what: String, _ err: Int32) -> ControlError {
            unlink(temporary)
            return ControlError(.system, "cannot write \(target): \(what): \(String(cString: strerror(err)))")
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw fail("create \(temporary)", errno) }
        var written = 0
        let ok = data.withUnsafeBytes { raw -> Bool in
            while written < raw.count {
                let n = write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return false }
                written += n
            }
            return true
        }
        let writeErrno = errno
        guard ok else {
            close(fd)
            throw fail("write", writeErrno)
        }
        guard fsync(fd) == 0 else {
            let e = errno
            close(fd)
            throw fail("fsync", e)
        }
        close(fd)
        guard rename(temporary, target) == 0 else { throw fail("rename", errno) }
        syncDirectory()
    }

    /// Flushes the directory's entries (a rename or unlink is durable only once it is).
    private func syncDirectory() {
        let fd = open(sandboxDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    public func remove(id: String) {
        unlink(path(of: id))
    }

    /// A file found at start: its path and either its state or why it cannot be used.
    public struct Leftover: Sendable {
        public var path: String
        public var state: SandboxState?
        /// Set when `state` is nil: what is wrong with the file, for the log.
        public var problem: String?
    }

    /// Every sandbox file present, in name order. Temporary files a crash left mid-write are
    /// removed (the file they were to replace is still whole).
    public func leftovers() -> [Leftover] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: sandboxDirectory)) ?? []
        for name in names where name.hasPrefix(".") && name.contains(".json.tmp-") {
            unlink(sandboxDirectory + "/" + name)
        }
        return names.filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted().map { name in
            let path = sandboxDirectory + "/" + name
            return Self.load(path: path, id: String(name.dropLast(".json".count)))
        }
    }

    /// Reads one state file, which must hold sandbox `id`.
    static func load(path: String, id: String) -> Leftover {
        func bad(_ problem: String) -> Leftover { Leftover(path: path, state: nil, problem: problem) }
        guard let data = FileManager.default.contents(atPath: path) else { return bad("it cannot be read") }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return bad("it is not a JSON object")
        }
        let state: SandboxState
        do {
            switch object["formatVersion"] {
            case nil where object["id"] is String:
                // An older gatewayd wrote the attach request alone.
                state = SandboxState(
                    addressBlock: nil, sandbox: try JSONDecoder().decode(AttachRequest.self, from: data),
                    formatVersion: 0)
            case nil:
                return bad("it has no formatVersion: it is not a gatewayd state file")
            case let version as Int where version == SandboxState.currentFormatVersion:
                state = try JSONDecoder().decode(SandboxState.self, from: data)
            case let version?:
                return bad(
                    "its format version \(version) is not one this gatewayd reads "
                        + "(\(SandboxState.currentFormatVersion)): was it written by another version?")
            }
        } catch let error as DecodingError {
            return bad(ControlService.describe(error))
        } catch {
            return bad("\(error)")
        }
        guard state.sandbox.id == id else {
            return bad("it holds sandbox '\(state.sandbox.id)' but is named \(id).json")
        }
        return Leftover(path: path, state: state, problem: nil)
    }

    /// Removes a file found by `leftovers()`.
    public func removeLeftover(_ leftover: Leftover) {
        unlink(leftover.path)
    }

    /// Sets a file found by `leftovers()` aside (renamed to end in `rejectedSuffix`), so that it
    /// is no longer restored but stays for the operator to look at; returns its new path.
    @discardableResult
    public func reject(_ leftover: Leftover) -> String {
        let kept = leftover.path + Self.rejectedSuffix
        if rename(leftover.path, kept) != 0 { return leftover.path }
        syncDirectory()
        return kept
    }
}
