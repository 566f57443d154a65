// What the plugin asks of gatewayd, as a protocol: ControlClient carries it over the control
// socket, and the tests answer it from memory.
import GatewayControl

public protocol GatewaydCalls {
    /// POST /v1/sandboxes
    func attach(_ request: AttachRequest) throws(ControlError) -> SandboxView
    /// GET /v1/sandboxes/ID
    func sandbox(_ id: String) throws(ControlError) -> SandboxView
    /// GET /v1/sandboxes
    func sandboxes() throws(ControlError) -> [SandboxView]
    /// DELETE /v1/sandboxes/ID
    func detach(_ id: String) throws(ControlError)
    /// GET /v1/health
    func health() throws(ControlError)
}

extension ControlClient: GatewaydCalls {
    private struct Detached: Decodable {
        var detached: Bool
    }

    private struct Health: Decodable {
        var status: String
    }

    public func attach(_ request: AttachRequest) throws(ControlError) -> SandboxView {
        try call("POST", "/v1/sandboxes", body: request, as: SandboxView.self)
    }

    public func sandbox(_ id: String) throws(ControlError) -> SandboxView {
        try call("GET", "/v1/sandboxes/\(id)", as: SandboxView.self)
    }

    public func sandboxes() throws(ControlError) -> [SandboxView] {
        try call("GET", "/v1/sandboxes", as: [SandboxView].self)
    }

    public func detach(_ id: String) throws(ControlError) {
        _ = try call("DELETE", "/v1/sandboxes/\(id)", as: Detached.self)
    }

    public func health() throws(ControlError) {
        let answer = try call("GET", "/v1/health", as: Health.self)
        guard answer.status == "ok" else {
            throw ControlError(.busy, "gatewayd reports its health as '\(answer.status)'")
        }
    }
}
