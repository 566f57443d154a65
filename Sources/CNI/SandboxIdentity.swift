// The gatewayd sandbox ID of an attachment: derived, never stored, so DEL, CHECK and GC find the
// sandbox from what the runtime passes them, and GC knows which sandboxes its network made.
import Crypto

public enum SandboxIdentity {
    /// `cni-NNNNNNNN-HHHHHHHHHHHH`: N the first 8 hex digits of SHA-256(network name), H the
    /// first 12 of SHA-256("CONTAINERID/IFNAME"). 25 characters of SandboxSpec's alphabet, so
    /// valid whatever the container ID (up to 64 characters and more) or the network's name.
    public static func sandboxID(network: String, attachment: Attachment) -> String {
        prefix(network: network) + hex(Array(SHA256.hash(data: Array("\(attachment.containerID)/\(attachment.ifname)".utf8))), digits: 12)
    }

    /// What every sandbox of `network` starts with.
    public static func prefix(network: String) -> String {
        "cni-" + hex(Array(SHA256.hash(data: Array(network.utf8))), digits: 8) + "-"
    }

    private static func hex(_ bytes: [UInt8], digits: Int) -> String {
        let alphabet = Array("0123456789abcdef")
        var text = ""
        for byte in bytes.prefix((digits + 1) / 2) {
            text.append(alphabet[Int(byte >> 4)])
            text.append(alphabet[Int(byte & 0x0F)])
        }
        return String(text.prefix(digits))
    }
}
