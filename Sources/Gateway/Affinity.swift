// Pins the calling thread to a CPU through the C shim (pthread_setaffinity_np).
import CGatewayShims
import SystemPackage

/// - Throws: the errno the shim returned negated (EINVAL for a CPU outside the allowed set).
func pinCurrentThread(_ cpu: Int) throws(Errno) {
    let rc = gw_pin_current_thread(Int32(cpu))
    if rc < 0 { throw Errno(rawValue: -rc) }
}
