// Reading and writing one sysctl or sysfs value (per-device network settings, bridge options),
// for the settings rtnetlink has no attribute for.
#if canImport(Glibc)
import Glibc
#endif
import Link
import SystemPackage

/// One sysctl or sysfs value, written as the kernel reads it.
enum HostSetting {
    /// Writes `value` to the file at `path`.
    /// - Parameter ifPresent: a missing file (a kernel without the feature) is not an error.
    static func write(_ value: String, to path: String, ifPresent: Bool = false) throws(GatewayError) {
        let file: OwnedDescriptor
        do {
            file = try OwnedDescriptor.adopting(result: open(path, O_WRONLY | O_TRUNC | O_CLOEXEC))
        } catch .noSuchFileOrDirectory where ifPresent {
            return
        } catch {
            throw GatewayError(.system, "could not open \(path) to write \(value): \(error)", cause: .system(error))
        }
        let fd = file.rawValue
        let bytes = Array(value.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n != bytes.count {
            let e = Errno.last
            throw GatewayError(.system, "could not write \(value) to \(path): \(e)", cause: .system(e))
        }
    }

    /// The file's first line, without white space; nil when it cannot be read.
    static func read(_ path: String) -> String? {
        guard let file = try? OwnedDescriptor.adopting(result: open(path, O_RDONLY | O_CLOEXEC)) else { return nil }
        let fd = file.rawValue
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        let line = buffer[..<n].prefix { $0 != UInt8(ascii: "\n") }
        return String(decoding: line, as: UTF8.self).trimmingWhiteSpace
    }
}

extension String {
    fileprivate var trimmingWhiteSpace: String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let end = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[start...end])
    }
}
