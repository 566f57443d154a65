// Sends each stack event of a sandbox to the relay that owns its flow: the ingress relay claims
// the flows it opened for published ports, everything else is egress.
import NetStack

extension Sandbox {
    func route(_ event: StackEvent) {
        if ingress.handle(event) { return }
        egress.handle(event)
    }
}
