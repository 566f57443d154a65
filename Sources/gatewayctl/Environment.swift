// Reading an environment variable without Foundation.
#if canImport(Glibc)
    import Glibc
#endif

enum Environment {
    static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        let text = String(cString: raw)
        return text.isEmpty ? nil : text
    }
}
