// Pins the calling thread to a CPU through the C shim (pthread_setaffinity_np).
import CGatewayShims

/// 0 on success, else -errno.
@discardableResult
func pinCurrentThread(_ cpu: Int) -> Int32 { gw_pin_current_thread(Int32(cpu)) }
